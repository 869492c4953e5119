"""``rbl policy``, ``rbl explain``, ``rbl sources`` and ``rbl feeds``: the policy and what feeds it."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from rbl.errors import RblError, SubjectError
from rbl.policy.listing import load_listing_policy
from rbl.store import ListingStore
from rbl.zone.config import load_zones
from rbl.cli.base import CONTEXT_SETTINGS, cli, locations, notices_of, one_zone


@cli.group(context_settings=CONTEXT_SETTINGS)
def policy() -> None:
    """Check the policy folder: listing numbers, vendors, feeds, exclusions.

    \b
    Example:
        rbl policy check --policy policy/
    """


@policy.command("check")
@locations
def policy_check(db, policy, zones) -> None:
    """Load every policy and zone file; exit 2 on any error or warning.

    Errors (unknown key, space kind or feed, a missing file, a vendor's ranges
    contradicting each other) and warnings (a selector matching nothing) both
    name file and line. On success it prints what the policy classifies.

    \b
    Example:
        rbl policy check && rbl serve
    """
    from rbl.errors import ConfigError
    from rbl.policy.resolvers import load_resolvers
    from rbl.policy.sources import load_sources
    from rbl.policy.vendors import load_policy

    configs = load_zones(zones)
    loaded = load_policy(policy)
    listed_from = load_sources(policy)
    resolvers = load_resolvers(policy)
    origins = {config.origin for config in configs}
    for source in listed_from:
        if source.zone is not None and source.zone not in origins:
            raise ConfigError(f"zone: {source.zone} is not served here (zones: {', '.join(sorted(origins))})",
                              source.file, 1)
    for warning in loaded.warnings:
        click.echo(f"rbl: warning: {warning}", err=True)
    if loaded.warnings:
        sys.exit(2)
    counts: dict[str, int] = {}
    for item in loaded.ranges:
        counts[item.space] = counts.get(item.space, 0) + 1
    spread = ", ".join(f"{n} {space}" for space, n in sorted(counts.items())) or "no ranges"
    click.echo(f"{policy}: ok: {len(loaded.vendors)} vendors, {spread}; zones: "
               + ", ".join(f"{z.origin} ({z.serves})" for z in configs) + f"; {len(listed_from)} listing sources; {len(resolvers)} public resolver networks")


@cli.command()
@locations
@click.argument("subject")
@click.option("--json", "as_json", is_flag=True, help="The decision and trace as JSON (as GET /v1/lookup/SUBJECT).")
def explain(db, policy, zones, subject, as_json) -> None:
    """Explain what every zone answers for an address or domain, and why.

    The trace names the matched range (vendor, space kind, feed and line),
    the listings, escalation and expiry. Exit code 1 when not listed.

    \b
    Example:
        rbl explain 3.5.140.7
        rbl explain spam.example --json
    """
    from rbl.explain import explain as explain_subject, render
    from rbl.policy.vendors import load_policy
    from rbl.zone.source import vendor_standing

    store, configs, rules = ListingStore(db), load_zones(zones), load_policy(policy)
    try:
        result = explain_subject(subject, store, configs, rules,
                                 standing=vendor_standing(store, configs, rules, store.clock()))
    except SubjectError as exc:
        raise RblError(f"SUBJECT: {exc}") from None
    click.echo(json.dumps(result, indent=2) if as_json else render(result))
    sys.exit(0 if result["listed"] else 1)


_timeout = click.option("--timeout", type=click.FloatRange(0.1, 600), default=30.0, show_default=True,
                        help="Seconds allowed for each download.")


@cli.group(context_settings=CONTEXT_SETTINGS)
def sources() -> None:
    """Mirror upstream lists named in policy/sources/*.yaml.

    \b
    Example:
        rbl sources fetch
    """


@sources.command("fetch")
@locations
@click.argument("names", nargs=-1, metavar="[NAME...]")
@_timeout
def sources_fetch(db, policy, zones, names, timeout) -> None:
    """Download each source (or those NAMEd) and replace its listings with it.

    The download is parsed before it replaces the last good one; a failed or
    empty download keeps the last good listings. Exit code 2 if any failed.
    rbl serve does the same on each source's schedule (``every:``).

    \b
    Example:
        rbl sources fetch spamhaus-drop --policy policy/
    """
    from rbl.policy.sources import fetch_source, load_sources, replace_from

    known = {source.name: source for source in load_sources(policy)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise RblError(f"no source {', '.join(unknown)} in {policy}/sources (known: {', '.join(known) or 'none'})")
    expiry = load_listing_policy(policy).expiry
    first = one_zone(zones, None)
    notices = notices_of(policy)
    failed = 0
    for source in [known[name] for name in names] if names else known.values():
        result = asyncio.run(fetch_source(source, db, timeout))
        done = replace_from(source, db, first, expiry, result, notices)
        if done is None:
            failed += 1
            click.echo(f"{source.name}: failed: {result.detail}; the last good listings stay", err=True)
            continue
        click.echo(f"{source.name}: {result.status} ({result.detail}): {done.added} added, {done.refreshed} "
                   f"refreshed, {done.removed} removed")
    sys.exit(2 if failed else 0)


@cli.group(context_settings=CONTEXT_SETTINGS)
def feeds() -> None:
    """Refresh the vendors' published range feeds named in the policy.

    \b
    Example:
        rbl feeds fetch
    """


@feeds.command("fetch")
@locations
@_timeout
def feeds_fetch(db, policy, zones, timeout) -> None:
    """Download each feed file from its `url`; keep the last good file on any failure.

    Conditional GET (ETag, Last-Modified); the new file is parsed before it
    replaces the old one, by an atomic rename. Exit code 2 if any failed.

    \b
    Example:
        rbl feeds fetch --policy policy/ && rbl policy check
    """
    from pathlib import Path

    from rbl.policy.fetch import FetchTarget, fetch_all
    from rbl.policy.vendors import load_policy

    loaded = load_policy(policy)
    targets, seen = [], set()
    for vendor in loaded.vendors.values():
        for rule in vendor.rules:
            if rule.feed and rule.url:
                path = rule.file if rule.file.is_absolute() else Path(policy) / rule.file
                if path not in seen:
                    seen.add(path)
                    targets.append(FetchTarget(feed=rule.feed, path=path, url=rule.url))
    if not targets:
        click.echo(f"{policy}: no feed has a url to fetch")
        return
    failed = 0
    for result in fetch_all(targets, timeout=timeout):
        failed += result.status == "failed"
        click.echo(f"{result.target.path}: {result.status}: {result.detail}", err=result.status == "failed")
    if failed:
        sys.exit(2)
