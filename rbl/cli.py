"""The ``rbl`` command: one click group, a subcommand per job."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sys

import click

from rbl import __version__
from rbl.addresses import parse_subject
from rbl.errors import RblError, SubjectError
from rbl.policy.listing import load_listing_policy, parse_duration
from rbl.settings import DNS_DEFAULT, HTTP_DEFAULT, SETTINGS
from rbl.store import ListingStore
from rbl.store.listings import Entry
from rbl.zone.config import load_zones

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class RblGroup(click.Group):
    """Turns every RblError into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RblError as exc:
            click.echo(f"rbl: error: {exc}", err=True)
            ctx.exit(2)


def locations(func):
    """--db, --policy and --zones, each with its environment variable and default."""
    for setting in reversed(SETTINGS):
        func = click.option(
            f"--{setting.name}",
            envvar=setting.env,
            default=setting.default,
            show_default=True,
            show_envvar=True,
            help=setting.help.capitalize() + ".",
        )(func)
    return func


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _zone(zones: str, zone: str | None) -> str:
    origins = [z.origin for z in load_zones(zones)]
    if zone is None:
        return origins[0]
    zone = zone.lower().rstrip(".")
    if zone not in origins:
        raise RblError(f"--zone: no zone {zone!r} in {zones} (zones: {', '.join(origins)})")
    return zone


def _subjects(texts) -> list:
    out = []
    for text in texts:
        try:
            out.append(parse_subject(text))
        except SubjectError as exc:
            raise RblError(f"SUBJECT: {exc}") from None
    return out


def _code(text: str | None) -> str | None:
    import ipaddress

    from rbl.policy.listing import DEFAULT_CODES

    if text is None or text in DEFAULT_CODES:
        return text
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise RblError(f"--code: {text!r} is neither a code name ({', '.join(DEFAULT_CODES)}) "
                       "nor an address such as 127.0.0.2") from None
    if not address.is_loopback:
        raise RblError(f"--code: {text} is outside 127.0.0.0/8 (RFC 5782)")
    return str(address)


def _expiry(text: str | None, policy: str) -> dict:
    """store.add's expiry arguments: the policy's, with repeat offenders living longer, or --expires as given."""
    if text is None:
        rules = load_listing_policy(policy).expiry
        return {"expires": rules.default, "repeat": rules}
    try:
        return {"expires": parse_duration(text)}
    except ValueError as exc:
        raise RblError(f"--expires: {exc}") from None


@click.group(cls=RblGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="rbl")
def cli() -> None:
    """rbl: a DNS blocklist (RFC 5782) fair to tenants of shared cloud space.

    \b
    Example:
        rbl listing add 192.0.2.10 --reason "spam trap hit"
        rbl serve
    """


@cli.command()
@locations
@click.option("--dns", default=DNS_DEFAULT, show_default=True, help="Address and port for DNS (UDP and TCP); port 0 picks one.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="DNS worker processes sharing the port (SO_REUSEPORT) and one mapped snapshot.")
@click.option("--http", "http", default=HTTP_DEFAULT, show_default=True,
              help="Address and port for the HTTP API (GET /v1/lookup/SUBJECT); port 0 picks one; 'off': none.")
@click.option("-v", "--verbose", is_flag=True, help="Log every snapshot and more.")
def serve(db: str, policy: str, zones: str, dns: str, http: str, workers: int, verbose: bool) -> None:
    """Answer DNS queries for every zone, from a snapshot kept fresh from the store.

    A listing added with the CLI while the server runs is answered within a
    second; a broken zone or policy file keeps the last good snapshot.

    \b
    Example:
        rbl serve --dns 127.0.0.1:5353 --http 127.0.0.1:8080 --workers 2
        dig @127.0.0.1 -p 5353 2.0.0.127.bl.example A
        curl http://127.0.0.1:8080/v1/lookup/127.0.0.2
    """
    from rbl.addresses import parse_endpoint
    from rbl.primary import Primary

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("rbl").setLevel(logging.INFO)
    host, port = parse_endpoint(dns, 53)
    http_endpoint = None if http == "off" else parse_endpoint(http, 80)
    primary = Primary(db, policy, zones)
    try:
        asyncio.run(primary.run(host, port, workers, http_endpoint))
    except OSError as exc:
        raise RblError(f"--dns {dns} / --http {http}: {exc.strerror or exc}") from None


@cli.group(context_settings=CONTEXT_SETTINGS)
def listing() -> None:
    """Add, remove, show and import listings.

    \b
    Example:
        rbl listing add 192.0.2.10 198.51.100.0/24 --reason "botnet"
    """


@listing.command("add")
@locations
@click.argument("subjects", nargs=-1, required=True, metavar="SUBJECT...")
@click.option("--zone", help="Zone to list in (default: the first zone).")
@click.option("--category", help="Category, such as spam, botnet, scanner.")
@click.option("--reason", help="Why, in words a delisting requester can read.")
@click.option("--expires", help="Lifetime after now: 30m, 6h, 7d, 2w or never (default: policy expiry).")
@click.option("--source", help="Where the evidence comes from (a trap, a feed, a person).")
@click.option("--exclude", is_flag=True, help="An exclusion: never listed, cuts a hole in wider listings.")
@click.option("--code", help="Answer with this code instead of block: a name (throttle, quarantine...) "
              "resolved by the zone, or an address in 127.0.0.0/8.")
def listing_add(db, policy, zones, subjects, zone, category, reason, expires, source, exclude, code) -> None:
    """List addresses, CIDRs or domains (``*.example.com``: its subdomains).

    All subjects are added in one transaction, or none of them.

    \b
    Example:
        rbl listing add 192.0.2.10 2001:db8::/48 spam.example --category spam
        rbl listing add bulk-mailer.example --zone dkim.bl.example --code throttle
    """
    parsed = _subjects(subjects)
    origin = _zone(zones, zone)
    lifetime = _expiry(expires, policy)
    code = _code(code)
    store = ListingStore(db)
    added, refreshed = store.add(
        [Entry(subject, exclude=exclude, code=code) for subject in parsed], zone=origin, actor=_actor(),
        category=category, reason=reason, source=source, **lifetime,
    )
    click.echo(f"{origin}: {added} added, {refreshed} refreshed")


@listing.command("remove")
@locations
@click.argument("subjects", nargs=-1, required=True, metavar="SUBJECT...")
@click.option("--zone", help="Zone to remove from (default: the first zone).")
def listing_remove(db, policy, zones, subjects, zone) -> None:
    """Remove listings; all of them or, if one is not listed, none.

    \b
    Example:
        rbl listing remove 192.0.2.10 198.51.100.0/24
    """
    parsed = _subjects(subjects)
    origin = _zone(zones, zone)
    count = ListingStore(db).remove(parsed, zone=origin, actor=_actor())
    click.echo(f"{origin}: {count} removed")


@listing.command("show")
@locations
@click.argument("subject", required=False)
@click.option("--zone", help="Only this zone.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--history", is_flag=True, help="What happened to SUBJECT: when, by whom, by which import.")
def listing_show(db, policy, zones, subject, zone, as_json, history) -> None:
    """Show listings: all, or those covering SUBJECT (an address inside a CIDR too).

    \b
    Example:
        rbl listing show 192.0.2.10
        rbl listing show 192.0.2.10 --history
    """
    parsed = _subjects([subject])[0] if subject else None
    if history:
        if parsed is None:
            raise click.UsageError("--history needs a SUBJECT")
        events = ListingStore(db).history(parsed, zone=zone.lower().rstrip(".") if zone else None)
        for event in events:
            if as_json:
                click.echo(json.dumps(event))
                continue
            extra = " ".join(f"{k}={event[k]}" for k in ("state", "file", "sha256", "source") if event.get(k))
            click.echo(f"{event['at']}\t{event['zone'] or '-'}\t{event['action']}\t{event['actor']}"
                       f"\taudit={event['audit']}" + (f"\t{extra}" if extra else ""))
        if not events:
            click.echo(f"no history for {parsed.text}")
            sys.exit(1)
        return
    rows = ListingStore(db).show(parsed, zone=zone.lower().rstrip(".") if zone else None)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict()))
        return
    if not rows:
        click.echo("no listings" + (f" cover {subject}" if subject else ""))
        sys.exit(1 if subject else 0)
    for row in rows:
        what = ("!" if row.exclude else "") + row.subject
        extra = " ".join(f"{k}={v}" for k, v in (
            ("category", row.category), ("reason", row.reason), ("source", row.source),
            ("code", row.code), ("hits", row.hits), ("expires", row.expires_at or "never"),
        ) if v is not None)
        click.echo(f"{row.zone}\t{what}\t{row.first_seen}\t{row.last_seen}\t{extra}")


@listing.command("import")
@locations
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["plain", "rbldnsd", "spamhaus-drop", "firehol", "ipsum"]),
              help="Format of FILE (guessed when absent).")
@click.option("--zone", help="Zone to list in (default: the first zone).")
@click.option("--category", help="Category for every entry.")
@click.option("--reason", help="Reason for entries that carry none.")
@click.option("--source", help="Source (default: the file name).")
@click.option("--expires", help="Lifetime: 30m, 6h, 7d, 2w or never (default: policy expiry).")
@click.option("--replace", is_flag=True,
              help="Make the source's listings in the zone exactly the file's: remove those it lacks.")
def listing_import(db, policy, zones, file, fmt, zone, category, reason, source, expires, replace) -> None:
    """Import a list in one transaction: every line, or (on any error) none.

    Formats: plain addresses/CIDRs, rbldnsd ip4set/ip4trie/ip6trie/dnset data
    (``:A:TXT`` values, ``!`` exclusions), Spamhaus DROP, FireHOL ipset/netset, ipsum.
    A big import is audited as one row (file, SHA-256, counts); ``rbl listing show
    SUBJECT --history`` still says which import listed or removed a subject.

    \b
    Example:
        rbl listing import firehol_level1.netset --format firehol --expires 2d
        rbl listing import drop.txt --source spamhaus-drop --replace
    """
    from pathlib import Path

    from rbl.store import formats

    origin = _zone(zones, zone)
    lifetime = _expiry(expires, policy)
    fmt = fmt or formats.guess_format(file)
    store = ListingStore(db)
    rows = formats.read_rows(file, fmt)
    about = {"file": str(Path(file).resolve()), "sha256": formats.digest(file), "format": fmt}
    kwargs = dict(zone=origin, actor=_actor(), category=category, reason=reason,
                  source=source or Path(file).name, replace=replace, about=about, **lifetime)
    if sys.stderr.isatty():
        with click.progressbar(length=formats.count_lines(file), label=f"importing {file}", file=sys.stderr) as bar:
            done = store.import_rows(_rows_progress(rows, bar), **kwargs)
            bar.update(max(0, bar.length - bar.pos))
    else:
        done = store.import_rows(rows, **kwargs)
    removed = f", {done.removed} removed" if replace else ""
    changed = f" ({done.changed} answered differently)" if done.changed else ""
    click.echo(f"{origin}: {done.added} added, {done.refreshed} refreshed{changed}{removed} from {file} ({fmt})")


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
    from rbl.policy.sources import load_sources
    from rbl.policy.vendors import load_policy

    configs = load_zones(zones)
    loaded = load_policy(policy)
    listed_from = load_sources(policy)
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
               + ", ".join(f"{z.origin} ({z.serves})" for z in configs) + f"; {len(listed_from)} listing sources")


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
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=30.0, show_default=True,
              help="Seconds allowed for each download.")
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
    first = _zone(zones, None)
    failed = 0
    for source in [known[name] for name in names] if names else known.values():
        result = asyncio.run(fetch_source(source, db, timeout))
        done = replace_from(source, db, first, expiry, result)
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
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=30.0, show_default=True,
              help="Seconds allowed for each download.")
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


def _token_store(db: str):
    from rbl.store.tokens import TokenStore

    return TokenStore(ListingStore(db))


def _token_rows(tokens, as_json: bool, empty: str) -> None:
    if as_json:
        for token in tokens:
            click.echo(json.dumps(token.as_dict()))
        return
    if not tokens:
        click.echo(empty)
        return
    click.echo("id\tscope\tvendor\thint\tlabel\tcreated\trevoked")
    for t in tokens:
        click.echo("\t".join([str(t.id), t.scope, t.vendor or "-", t.hint + "...", t.label or "-",
                              f"{t.created_at} by {t.created_by}",
                              f"{t.revoked_at} by {t.revoked_by}" if t.revoked_at else "-"]))


def _token_created(token, text: str) -> None:
    # The token is the last word, and this is the only time anything shows it.
    click.echo(f"{token.describe()} (shown once, store it now): {text}")


def _token_commands(group: click.Group, scope: str, *, create_help: str, revoke_help: str, list_help: str) -> None:
    """``create``, ``revoke`` and ``list`` under ``group`` for the tokens of one scope, with these helps.

    A vendor's create and list name the vendor (VENDOR, checked against the policy
    folder on create); the operator's have no such argument.
    """
    by_vendor = scope == "vendor"
    label = click.option("--label", help="A note to tell tokens apart, such as who holds it.")
    active = click.option("--active", is_flag=True, help="Only tokens in force, not revoked ones.")
    as_json = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    token_id = click.argument("token_id", type=int, metavar="ID")
    owner = [click.argument("vendor_name", metavar="VENDOR")] if by_vendor else []
    owner_if_any = [click.argument("vendor_name", metavar="[VENDOR]", required=False)] if by_vendor else []

    def command(name: str, text: str, *params):
        """Register func as ``name``: --db, --policy, --zones first, then params in order, as decorators would."""
        def register(func):
            for param in reversed(params):
                func = param(func)
            return group.command(name, help=text)(locations(func))
        return register

    def create_(db, policy, zones, label, vendor_name=None) -> None:
        if by_vendor:
            from rbl.policy.vendors import load_policy

            known = sorted(load_policy(policy).vendors)
            if vendor_name not in known:
                raise RblError(f"VENDOR: no vendor {vendor_name!r} in {policy} (vendors: {', '.join(known) or 'none'})")
        token, text = _token_store(db).create(scope, vendor_name, _actor(), label=label)
        _token_created(token, text)

    def revoke_(db, policy, zones, token_id) -> None:
        token = _token_store(db).revoke(token_id, _actor(), scope=scope)
        click.echo(f"{token.describe()} revoked")

    def list_(db, policy, zones, active, as_json, vendor_name=None) -> None:
        tokens = _token_store(db).list(vendor_name, include_revoked=not active, scope=scope)
        _token_rows(tokens, as_json, f"no {scope} tokens" + (f" for {vendor_name}" if vendor_name else ""))

    command("create", create_help, *owner, label)(create_)
    command("revoke", revoke_help, token_id)(revoke_)
    command("list", list_help, *owner_if_any, active, as_json)(list_)


@cli.group(context_settings=CONTEXT_SETTINGS)
def vendor() -> None:
    """Vendors of the policy folder: their credentials for the HTTP API.

    \b
    Example:
        rbl vendor token create aws --label "abuse desk"
    """


@vendor.group("token", context_settings=CONTEXT_SETTINGS)
def vendor_token() -> None:
    """Bearer tokens a vendor uses to report remediation (stored only as hashes).

    \b
    Example:
        rbl vendor token create aws
        rbl vendor token list aws
        rbl vendor token revoke 3
    """


_token_commands(
    vendor_token, "vendor",
    create_help="""Create a token for VENDOR (a vendor of the policy folder); print it once.

    The token is the last word of the output: nothing can show it again, as
    only its hash is stored. Revoke it and create another if it is lost.

    \b
    Example:
        rbl vendor token create aws --label "abuse desk"
        token 3 for vendor aws (shown once, store it now): rbl_...
    """,
    revoke_help="""Revoke a vendor's token by its id (as `rbl vendor token list` shows); it is refused from now on.

    \b
    Example:
        rbl vendor token revoke 3
    """,
    list_help="""List vendor tokens (all, or VENDOR's): id, vendor, hint, label, created, revoked.

    Never the token itself: the hint is its first 8 characters.

    \b
    Example:
        rbl vendor token list aws
    """,
)


@cli.group(context_settings=CONTEXT_SETTINGS)
def operator() -> None:
    """The operator's credentials for the HTTP API.

    \b
    Example:
        rbl operator token create --label "ops automation"
    """


@operator.group("token", context_settings=CONTEXT_SETTINGS)
def operator_token() -> None:
    """Bearer tokens for the operator's routes (stored only as hashes).

    \b
    Example:
        rbl operator token create
        rbl operator token list
        rbl operator token revoke 4
    """


_token_commands(
    operator_token, "operator",
    create_help="""Create an operator token; print it once.

    The token is the last word of the output: nothing can show it again, as
    only its hash is stored. Revoke it and create another if it is lost.

    \b
    Example:
        rbl operator token create --label "ops automation"
        token 4 for the operator (shown once, store it now): rbl_...
    """,
    revoke_help="""Revoke an operator token by its id (as `rbl operator token list` shows).

    \b
    Example:
        rbl operator token revoke 4
    """,
    list_help="""List operator tokens: id, hint, label, created, revoked; never the token itself.

    \b
    Example:
        rbl operator token list
    """,
)

# -- exports for mirrors (rbl/zone/export.py) ---------------------------------------


@cli.group(context_settings=CONTEXT_SETTINGS)
def export() -> None:
    """Write every zone for mirrors: rbldnsd data files or RFC 1035 zone files.

    Each file is written to a temporary file and renamed into place, so rsync
    or a running server never sees half of it.

    \b
    Example:
        rbl export rbldnsd /srv/rbldnsd && rbldnsd -b 127.0.0.1/5300 bl.example:combined:/srv/rbldnsd/bl.example.rbldnsd
        rbl export zonefile /etc/nsd/zones --watch
    """


def _export(fmt: str, db: str, policy: str, zones: str, directory: str, watch: bool, interval: float) -> None:
    import signal
    import time
    from pathlib import Path

    from rbl.zone.export import export as write_export, watch as watch_snapshots
    from rbl.zone.source import SnapshotSource

    source = SnapshotSource(db, policy, zones)

    def write(snapshot) -> None:
        started = time.perf_counter()
        try:
            written = write_export(snapshot, fmt, Path(directory))
        except OSError as exc:
            raise RblError(f"DIRECTORY {directory}: {exc.strerror or exc}") from None
        for path, size in written:
            click.echo(f"{path}: serial {snapshot.serial}, {size} bytes, {time.perf_counter() - started:.2f} s",
                       err=watch)

    try:
        write(source.build())
        if not watch:
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
        # SIGTERM as SystemExit: a file being written is removed, the last whole one stays.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        watch_snapshots(lambda: source.update() if source.stale() else None, write, interval)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()


def _export_options(func):
    func = click.option("--interval", type=click.FloatRange(0.1, 86400), default=5.0, show_default=True,
                        help="With --watch: at most one rewrite per this many seconds.")(func)
    func = click.option("--watch", is_flag=True,
                        help="Keep running: rewrite the files on each new snapshot (the store, policy or zones "
                             "changed, or a listing expired), as rbl serve does.")(func)
    func = click.argument("directory", type=click.Path(file_okay=False))(func)
    return locations(func)


@export.command("rbldnsd")
@_export_options
def export_rbldnsd(db, policy, zones, directory, watch, interval) -> None:
    """DIRECTORY/<origin>.rbldnsd: one rbldnsd combined dataset per zone.

    It holds ip4trie, ip6trie and dnset parts for the zone and its sub-zones,
    with $SOA, $NS, $TTL and TXT templates, and answers as rbl does (see the
    README for the few things rbldnsd answers otherwise).

    \b
    Example:
        rbl export rbldnsd /srv/rbldnsd
        rbldnsd -b 127.0.0.1/5300 -w /srv/rbldnsd bl.example:combined:bl.example.rbldnsd
    """
    _export("rbldnsd", db, policy, zones, directory, watch, interval)


@export.command("zonefile")
@_export_options
def export_zonefile(db, policy, zones, directory, watch, interval) -> None:
    """DIRECTORY/<origin>.zone: an RFC 1035 master file per zone, sub-zones included.

    CIDRs become wildcards on octet (IPv4) and nibble (IPv6) boundaries; it
    passes kzonecheck and nsd-checkzone and loads in NSD, Knot or BIND.

    \b
    Example:
        rbl export zonefile /var/lib/knot/zones
        kzonecheck -o bl.example /var/lib/knot/zones/bl.example.zone
    """
    _export("zonefile", db, policy, zones, directory, watch, interval)


@cli.group(context_settings=CONTEXT_SETTINGS)
def delist() -> None:
    """Delisting requests people sent (POST /v1/delist-requests): review and close them.

    A request never delists by itself: closing it as delisted removes the
    listing, audited like `rbl listing remove`.

    \b
    Example:
        rbl delist list
        rbl delist close 7 --resolution delisted --note "the open relay is fixed"
    """


@delist.command("list")
@locations
@click.option("--state", type=click.Choice(["open", "closed", "all"]), default="open", show_default=True,
              help="Which requests: the open queue, closed ones, or all.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def delist_list(db, policy, zones, state, as_json) -> None:
    """List delisting requests, oldest first: id, state, zone, subject, email, when, reason.

    \b
    Example:
        rbl delist list --state all
    """
    from rbl.store.delisting import DelistStore

    rows = DelistStore(ListingStore(db)).list(None if state == "all" else state)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict()))
        return
    if not rows:
        click.echo(f"no {'' if state == 'all' else state + ' '}delisting requests")
        return
    click.echo("id\tstate\tzone\tsubject\temail\tcreated\tlisted as\treason\tresolution")
    for r in rows:
        listed = " ".join(r.listed_as.get("codes", [])) or ",".join(r.listed_as.get("listings", [])) or "-"
        closed = f"{r.resolution} at {r.closed_at} by {r.closed_by}: {r.note}" if r.state == "closed" else "-"
        click.echo("\t".join([str(r.id), r.state, r.zone, r.subject, r.email, r.created_at, listed,
                              " ".join(r.reason.split()), " ".join(closed.split())]))


@delist.command("close")
@locations
@click.argument("request_id", type=click.IntRange(1, 2**63 - 1), metavar="ID")
@click.option("--resolution", type=click.Choice(["delisted", "rejected"]), required=True,
              help="delisted: remove the subject's listing now (audited); rejected: keep it listed.")
@click.option("--note", required=True, help="Why, for the requester: the operator's answer.")
def delist_close(db, policy, zones, request_id, resolution, note) -> None:
    """Close delisting request ID; with --resolution delisted, remove its listing in the same step.

    When a wider listing (a CIDR, *.domain) still lists the subject, nothing
    changes: remove that listing or add an exclusion first.

    \b
    Example:
        rbl delist close 7 --resolution delisted --note "the open relay is fixed"
        rbl delist close 8 --resolution rejected --note "still sending to our traps"
    """
    from rbl.policy.delisting import DelistError, parse_close
    from rbl.store.delisting import DelistStore

    try:
        resolution, note = parse_close({"resolution": resolution, "note": note})
    except DelistError as exc:
        raise RblError(f"--{exc}") from None
    closed, removed = DelistStore(ListingStore(db)).close(request_id, resolution, note, _actor())
    done = f"; removed {', '.join(removed)} from {closed.zone}" if removed else ""
    click.echo(f"delisting request {closed.id} ({closed.subject} in {closed.zone}) closed: {resolution}{done}")


def _rows_progress(rows, bar):
    """The rows, moving the bar every thousand (about a line each; a range line makes several)."""
    for n, row in enumerate(rows, 1):
        if n % 1000 == 0:
            bar.update(1000)
        yield row


def main() -> None:
    cli(prog_name="rbl")
