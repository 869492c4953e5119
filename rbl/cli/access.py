"""``rbl vendor token`` and ``rbl operator token``: who may write over HTTP."""

from __future__ import annotations

import json

import click

from rbl.errors import RblError
from rbl.store import ListingStore
from rbl.cli.base import CONTEXT_SETTINGS, actor_name, cli, locations


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
        token, text = _token_store(db).create(scope, vendor_name, actor_name(), label=label)
        _token_created(token, text)

    def revoke_(db, policy, zones, token_id) -> None:
        token = _token_store(db).revoke(token_id, actor_name(), scope=scope)
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


@vendor.command("notices", context_settings=CONTEXT_SETTINGS)
@locations
@click.argument("vendor_name", metavar="VENDOR")
@click.option("--events", "last", type=click.IntRange(0, 100_000), default=10, show_default=True,
              help="Show this many of the newest events too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the channels and the events.")
def vendor_notices(db, policy, zones, vendor_name, last, as_json) -> None:
    """What VENDOR has been told: events written, and per channel (webhook, email) how far
    delivery got, the oldest event still waiting, failed attempts and whether it is failing.

    \b
    Example:
        rbl vendor notices aws
        rbl vendor notices aws --events 100 --json
    """
    import time

    from rbl.delivery.courier import channel_figures
    from rbl.policy.vendors import load_policy
    from rbl.store.outbox import Outbox

    rules = load_policy(policy)
    if vendor_name not in rules.vendors:
        raise RblError(f"VENDOR: no vendor {vendor_name!r} in {policy} (vendors: {', '.join(sorted(rules.vendors))})")
    outbox = Outbox(ListingStore(db))
    written, figures = channel_figures(outbox, rules, time.time(), vendor_name)
    newest = written.get(vendor_name, 0)
    events = outbox.events(vendor_name, max(0, newest - last), last) if last else []
    channels = [dict(c.__dict__, waiting=newest - c.delivered,
                     last_error=outbox.channel(vendor_name, c.channel).last_error) for c in figures]
    if as_json:
        click.echo(json.dumps({"vendor": vendor_name, "written": newest, "channels": channels, "events": events}))
        return
    click.echo(f"{vendor_name}: {newest} events written (pull: GET /v1/vendors/{vendor_name}/events?after=ID)")
    if not channels:
        click.echo("no webhook or email in its notify: section")
    for c in channels:
        oldest = f", the oldest {c['oldest_undelivered']:.0f} s old" if c["oldest_undelivered"] is not None else ""
        state = "FAILING" if c["failing"] else "ok"
        error = f"; last error: {c['last_error']}" if c["last_error"] else ""
        click.echo(f"{c['channel']}: {state}: delivered through {c['delivered']}, {c['waiting']} waiting{oldest}; "
                   f"{c['attempts']} failed attempts{error}")
    for event in events:
        click.echo(f"#{event['id']}\t{event['at']}\t{event['type']}\t{event.get('subject', '')}")
