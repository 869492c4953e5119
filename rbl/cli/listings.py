"""``rbl listing`` and ``rbl delist``: the listings, and the public's requests to remove them."""

from __future__ import annotations

import json
import sys

import click

from rbl.errors import RblError
from rbl.store import ListingStore
from rbl.store.listings import Entry
from rbl.cli.base import (CONTEXT_SETTINGS, actor_name, cli, code_of, expiry_of, identities_of, locations, one_zone,
                          subjects_of, writing_store)


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
@click.option("--identity", "identity", multiple=True, metavar="DOMAIN",
              help="A DKIM signing domain (d=) seen abusing the address; repeat for more. Added to what the "
                   "listing names; the tenant zone tells it from bystanders on the same address.")
@click.option("--code", help="Answer with this code instead of block: a name (throttle, quarantine...) "
              "resolved by the zone, or an address in 127.0.0.0/8.")
def listing_add(db, policy, zones, subjects, zone, category, reason, expires, source, exclude, identity, code) -> None:
    """List addresses, CIDRs or domains (``*.example.com``: its subdomains).

    All subjects are added in one transaction, or none of them.

    \b
    Example:
        rbl listing add 192.0.2.10 2001:db8::/48 spam.example --category spam
        rbl listing add bulk-mailer.example --zone dkim.bl.example --code throttle
        rbl listing add 3.5.141.7 --identity shop.example --identity mailer.shop.example
    """
    parsed = subjects_of(subjects)
    identities = identities_of(identity, parsed)
    origin = one_zone(zones, zone)
    lifetime = expiry_of(expires, policy)
    code = code_of(code)
    store = writing_store(db, policy)
    added, refreshed = store.add(
        [Entry(subject, exclude=exclude, code=code, identities=identities) for subject in parsed], zone=origin,
        actor=actor_name(),
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
    parsed = subjects_of(subjects)
    origin = one_zone(zones, zone)
    count = writing_store(db, policy).remove(parsed, zone=origin, actor=actor_name())
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
    parsed = subjects_of([subject])[0] if subject else None
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
            ("identities", ",".join(row.identity_list) or None),
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

    origin = one_zone(zones, zone)
    lifetime = expiry_of(expires, policy)
    fmt = fmt or formats.guess_format(file)
    store = writing_store(db, policy)
    rows = formats.read_rows(file, fmt)
    about = {"file": str(Path(file).resolve()), "sha256": formats.digest(file), "format": fmt}
    kwargs = dict(zone=origin, actor=actor_name(), category=category, reason=reason,
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
    """List delisting requests and vendors' false positive disputes, oldest first: id, state, zone,
    subject, email (a dispute's vendor), when, reason. Both close with rbl delist close.

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
        click.echo("\t".join([str(r.id), r.state, r.zone, r.subject, r.email or r.client, r.created_at, listed,
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
    closed, removed = DelistStore(writing_store(db, policy)).close(request_id, resolution, note, actor_name())
    done = f"; removed {', '.join(removed)} from {closed.zone}" if removed else ""
    click.echo(f"delisting request {closed.id} ({closed.subject} in {closed.zone}) closed: {resolution}{done}")



def _rows_progress(rows, bar):
    """The rows, moving the bar every thousand (about a line each; a range line makes several)."""
    for n, row in enumerate(rows, 1):
        if n % 1000 == 0:
            bar.update(1000)
        yield row
