"""What every ``rbl`` subcommand shares: the group, the store and file options, argument checks."""

from __future__ import annotations

import getpass

import click

from rbl import __version__
from rbl.addresses import parse_subject
from rbl.errors import RblError, SubjectError
from rbl.policy.listing import load_listing_policy, parse_duration
from rbl.settings import SETTINGS
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


def actor_name() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def one_zone(zones: str, zone: str | None) -> str:
    origins = [z.origin for z in load_zones(zones)]
    if zone is None:
        return origins[0]
    zone = zone.lower().rstrip(".")
    if zone not in origins:
        raise RblError(f"--zone: no zone {zone!r} in {zones} (zones: {', '.join(origins)})")
    return zone


def subjects_of(texts) -> list:
    out = []
    for text in texts:
        try:
            out.append(parse_subject(text))
        except SubjectError as exc:
            raise RblError(f"SUBJECT: {exc}") from None
    return out


def identities_of(texts, subjects) -> tuple[str, ...]:
    """``--identity`` values, checked (:func:`rbl.addresses.parse_identities`)."""
    from rbl.addresses import parse_identities

    try:
        return parse_identities(texts, subjects)
    except SubjectError as exc:
        raise RblError(f"--identity: {exc}") from None


def code_of(text: str | None) -> str | None:
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


def expiry_of(text: str | None, policy: str) -> dict:
    """store.add's expiry arguments: the policy's, with repeat offenders living longer, or --expires as given."""
    if text is None:
        rules = load_listing_policy(policy).expiry
        return {"expires": rules.default, "repeat": rules}
    try:
        return {"expires": parse_duration(text)}
    except ValueError as exc:
        raise RblError(f"--expires: {exc}") from None


def writing_store(db: str, policy: str):
    """The store for a command that changes listings, with the vendors' notices hooked in: every
    change in a vendor's space writes its event in the change's own transaction. No policy folder:
    no vendors, no notices; a broken one stops the command before it writes anything."""
    from rbl.store import ListingStore

    store = ListingStore(db)
    store.notices = notices_of(policy)
    return store


def notices_of(policy: str):
    """The notices hook for the policy folder ``policy`` (None: no folder, so no vendors).

    A broken folder does not stop listings: the change records that its notices are owed,
    and rbl serve writes them from its last good policy.
    """
    from pathlib import Path

    from rbl.errors import ConfigError
    from rbl.policy.notices import Notices
    from rbl.policy.vendors import load_policy

    if not Path(policy).is_dir():
        return None
    try:
        return Notices(load_policy(policy))
    except ConfigError as exc:
        click.echo(f"rbl: warning: {exc}; the vendors' notices of this change are left to rbl serve", err=True)
        return Notices(None)


@click.group(cls=RblGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="rbl")
def cli() -> None:
    """rbl: a DNS blocklist (RFC 5782) fair to tenants of shared cloud space.

    \b
    Example:
        rbl listing add 192.0.2.10 --reason "spam trap hit"
        rbl serve
    """
