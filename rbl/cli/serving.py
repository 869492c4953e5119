"""``rbl serve`` and ``rbl export``: answering, and files for mirrors."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from rbl.errors import RblError
from rbl.settings import DNS_DEFAULT, HTTP_DEFAULT
from rbl.cli.base import CONTEXT_SETTINGS, cli, locations


@cli.command()
@locations
@click.option("--dns", default=DNS_DEFAULT, show_default=True, help="Address and port for DNS (UDP and TCP); port 0 picks one.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="DNS worker processes sharing the port (SO_REUSEPORT) and one mapped snapshot.")
@click.option("--http", "http", default=HTTP_DEFAULT, show_default=True,
              help="Address and port for the HTTP API (GET /v1/lookup/SUBJECT); port 0 picks one; 'off': none.")
@click.option("--http-nice", type=click.IntRange(0, 19), default=None,
              help="How much lower the HTTP side's CPU priority is than DNS's (0 to 19; default 19): "
                   "under load DNS answers first, pages and API calls take what is left.")
@click.option("--smtp", envvar="RBL_SMTP", metavar="HOST:PORT",
              help="The SMTP relay that sends vendors' email digests (notify.email); none: digests wait.")
@click.option("--smtp-starttls", is_flag=True, envvar="RBL_SMTP_STARTTLS", help="STARTTLS before sending.")
@click.option("--smtp-credentials", envvar="RBL_SMTP_CREDENTIALS", type=click.Path(dir_okay=False),
              help="A file holding user:password for the relay (read when sending, never logged).")
@click.option("--smtp-from", envvar="RBL_SMTP_FROM", metavar="ADDRESS",
              help="The digests' From address (default: rbl@ this host's name).")
@click.option("-v", "--verbose", is_flag=True, help="Log every snapshot and more.")
def serve(db: str, policy: str, zones: str, dns: str, http: str, workers: int, http_nice: int | None,
          smtp: str | None, smtp_starttls: bool, smtp_credentials: str | None, smtp_from: str | None,
          verbose: bool) -> None:
    """Answer DNS queries for every zone, from a snapshot kept fresh from the store.

    A listing added with the CLI while the server runs is answered within a
    second; a broken zone or policy file keeps the last good snapshot.

    \b
    Example:
        rbl serve --dns 127.0.0.1:5353 --http 127.0.0.1:8080 --workers 2
        rbl serve --smtp mail.example.net:587 --smtp-starttls --smtp-credentials smtp.secret
        dig @127.0.0.1 -p 5353 2.0.0.127.bl.example A
        curl http://127.0.0.1:8080/v1/lookup/127.0.0.2
    """
    from rbl.addresses import parse_endpoint
    from rbl.primary import HTTP_NICE, Primary

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("rbl").setLevel(logging.INFO)
    host, port = parse_endpoint(dns, 53)
    http_endpoint = None if http == "off" else parse_endpoint(http, 80)
    relay = None
    if smtp:
        from pathlib import Path

        from rbl.delivery.courier import Relay
        from rbl.policy.notify import is_address

        try:
            smtp_host, smtp_port = parse_endpoint(smtp, 25)
        except RblError as exc:
            raise RblError(f"--smtp: {exc}") from None
        if smtp_port == 0:
            raise RblError(f"--smtp: {smtp!r}: the relay's port cannot be 0")
        if smtp_from and not is_address(smtp_from):
            raise RblError(f"--smtp-from: {smtp_from!r} is not an email address")
        relay = Relay(smtp_host, smtp_port, smtp_starttls, Path(smtp_credentials) if smtp_credentials else None,
                      smtp_from or "")
    primary = Primary(db, policy, zones, HTTP_NICE if http_nice is None else http_nice, relay=relay)
    try:
        asyncio.run(primary.run(host, port, workers, http_endpoint))
    except OSError as exc:
        raise RblError(f"--dns {dns} / --http {http}: {exc.strerror or exc}") from None



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
