"""``rbl key``: access keys for the DNS zones that read them (``keys:`` in a zone file)."""

from __future__ import annotations

import json
import time

import click

from rbl.cli.base import CONTEXT_SETTINGS, actor_name, cli, locations
from rbl.errors import RblError
from rbl.store import ListingStore
from rbl.store.keys import key_rows


def _keys(db: str):
    from rbl.store.keys import KeyStore

    return KeyStore(ListingStore(db))


@cli.group(context_settings=CONTEXT_SETTINGS)
def key() -> None:
    """Access keys: the label receivers put in their query names (2.0.0.127.KEY.bl.example).

    A zone reads them when its file says `keys: required` or `keys: optional`.
    Only a hash of each key is stored; its text is shown once, when created.

    \b
    Example:
        rbl key create acme-mail --quota 100000/day
        rbl key list
        rbl key revoke acme-mail
    """


@key.command("create", context_settings=CONTEXT_SETTINGS)
@locations
@click.argument("name")
@click.option("--quota", metavar="N/PERIOD", help="Queries per period: 100000/day, 5000/hour, 1000/10s (default: none).")
# --zone, not --zones: --zones names the zones folder, as in every command.
@click.option("--zone", "zone_names", multiple=True, metavar="ZONE",
              help="A zone the key opens, with its sub-zones (repeat it; default: every keyed zone).")
def create(db, policy, zones, name, quota, zone_names) -> None:
    """Create a key called NAME (who holds it); print the key once.

    The key is the last word of the output: nothing can show it again. Revoke
    it and create another if it is lost.

    \b
    Example:
        rbl key create acme-mail --quota 100000/day --zone bl.example
        key acme-mail (shown once, store it now): 3xq...
    """
    from rbl.store.keys import parse_quota
    from rbl.zone.config import load_zones

    try:
        parsed = parse_quota(quota) if quota is not None else None
    except ValueError as exc:
        raise RblError(f"--quota: {exc}") from None
    chosen = None
    if zone_names:
        keyed = {z.origin for z in load_zones(zones) if not z.apex}
        chosen = [z.lower().rstrip(".") for z in zone_names]
        for zone in chosen:
            if zone not in keyed:
                raise RblError(f"--zone: no zone {zone!r} in {zones} (zones: {', '.join(sorted(keyed))})")
    made, text = _keys(db).create(name, actor_name(), parsed, chosen)
    click.echo(f"key {made.name} (shown once, store it now): {text}")


@key.command("list", context_settings=CONTEXT_SETTINGS)
@locations
@click.option("--active", is_flag=True, help="Only keys in force, not revoked ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(db, policy, zones, active, as_json) -> None:
    """List keys: name, hint, zones, quota, queries in the period in force, created, revoked.

    Usage is what the running server last wrote (every few seconds). Never the key itself.

    \b
    Example:
        rbl key list --active
    """
    store = _keys(db)
    rows = key_rows(store.list(include_revoked=not active), store.usage(), time.time())
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("no keys")
        return
    click.echo("name\thint\tzones\tquota\tused\ttotal\tcreated\trevoked")
    for r in rows:
        click.echo("\t".join([r["name"], r["hint"] + "...", ",".join(r["zones"]) if r["zones"] else "all",
                              r["quota"] or "-", str(r["used"]), str(r["total"]),
                              f"{r['created_at']} by {r['created_by']}",
                              f"{r['revoked_at']} by {r['revoked_by']}" if r["revoked_at"] else "-"]))


@key.command("revoke", context_settings=CONTEXT_SETTINGS)
@locations
@click.argument("name")
def revoke(db, policy, zones, name) -> None:
    """Revoke the key called NAME: a running server answers it 127.255.255.254 within a second.

    \b
    Example:
        rbl key revoke acme-mail
    """
    done = _keys(db).revoke(name, actor_name())
    click.echo(f"key {done.name} revoked")
