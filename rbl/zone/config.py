"""``zones/<origin>.yaml``: what a zone serves besides its listings.

Example::

    origin: bl.example
    ttl: 2100                  # listed answers
    negative_ttl: 300          # NXDOMAIN and NODATA (SOA minimum, RFC 2308)
    soa:
      mname: ns1.bl.example
      rname: hostmaster.bl.example
      refresh: 3600
      retry: 600
      expire: 604800
      ttl: 3600
    ns:
      ttl: 86400
      servers:
        - name: ns1.bl.example
          addresses: [127.0.0.1, "::1"]   # glue, served as A/AAAA
    txt: "Listed by bl.example, see https://bl.example/lookup?q=$"
    malformed_answer: false    # true: malformed names answer 127.255.255.252
    access:                    # first matching rule wins; no match: allow
      - networks: [192.0.2.0/24]
        action: error          # allow, refuse (REFUSED) or error (127.255.255.254)
    serves: listings           # listings: decided by policy (DESIGN section 4);
                               # verbatim: listings as stored, as rbldnsd would
    subzones:                  # served under the zone's SOA and NS, e.g. cloud.bl.example
      - name: cloud
        serves: cloud          # the cloud information zone: which vendor's space, which kind
      - name: tenant
        serves: tenant         # identity.reversed-address: implicated (127.0.3.2) or bystander (127.0.3.1)
      - name: dkim
        serves: listings       # DKIM signing domains: rbl listing add --zone dkim.bl.example
        codes: {block: 127.0.2.2, throttle: 127.0.2.4}
        dkim: true             # vendors' tenant_terminated identities are listed here
    keys: optional             # access keys in query names (2.0.0.127.KEY.bl.example): required,
                               # optional or off (the default); sub-zones follow the zone
    key_info: "keys: https://bl.example/keys"   # said in the TXT of every key error answer
    rate_limit:                # response rate limiting of UDP answers, per client /24 and /56
      responses_per_second: 50 # answers with records
      nxdomains_per_second: 50 # NXDOMAIN and NODATA
      errors_per_second: 10    # REFUSED, FORMERR, NOTIMP and the 127.255.255.25x error answers
      window: 15               # seconds of excess remembered
      slip: 2                  # every 2nd limited answer goes out truncated (TC=1); 0: none
      exempt: [192.0.2.0/24]   # never limited
    export:                    # rbl export rbldnsd|zonefile
      ipv4_mapped: true        # zone files: ::ffff:a.b.c.d names answered from the IPv4
                               # listings, as rbl does (false: only the RFC 5782 test point)
    transfer:                  # AXFR/IXFR to secondaries, NOTIFY on every new serial
      allow: [127.0.0.0/8]     # who may transfer (default: loopback only)
      secondaries: ["127.0.0.1:5300"]    # NOTIFY goes here (port 53 if none)
      key: {name: rbl-xfr, algorithm: hmac-sha256, secret_file: rbl-xfr.key}  # or secret: BASE64
      tsig: required           # required (default): unsigned transfers are REFUSED; optional
      history: 64              # serials kept for IXFR; older clients get AXFR
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rbl import yamlfile
from rbl.addresses import parse_endpoint
from rbl.errors import ConfigError, RblError

_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
MAX_TTL = 2**31 - 1

MALFORMED_CODE = "127.255.255.252"
ACCESS_CODE = "127.255.255.254"
KEY_MODES = ("off", "optional", "required")
ERROR_TTL = 60  # the 127.255.255.25x answers of keys and resolvers: short, so a fixed problem passes quickly
ACCESS_ACTIONS = ("allow", "refuse", "error")
SERVES = ("listings", "verbatim", "cloud", "tenant")
# The cloud information zone's codes (DESIGN section 3): input to scoring, never a block.
CLOUD_CODES = {"shared": "127.0.1.1", "dedicated": "127.0.1.2", "quarantine": "127.0.1.3"}


@dataclass(frozen=True)
class Soa:
    mname: str
    rname: str
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800
    ttl: int = 3600


TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
TSIG_MODES = ("required", "optional")
MAX_HISTORY = 10000
LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key (RFC 8945). The secret never shows in a repr, a log or an error."""

    name: str  # lowercase, no trailing dot
    algorithm: str  # one of TSIG_ALGORITHMS
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class TransferConfig:
    """Zone transfers of one zone (with its sub-zones) to secondaries."""

    allow: tuple[str, ...] = LOOPBACK  # networks that may ask for AXFR/IXFR
    secondaries: tuple[tuple[str, int], ...] = ()  # (address, port) to NOTIFY on every new serial
    key: TsigKey | None = None
    tsig: str = "required"  # one of TSIG_MODES
    history: int = 64  # serials kept for IXFR

    def allows(self, client: str | None) -> bool:
        """Whether a client address lies in the allow list."""
        if client is None:
            return False
        try:
            address = ipaddress.ip_address(client.split("%")[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net
                   for net in map(ipaddress.ip_network, self.allow))


@dataclass(frozen=True)
class RateLimit:
    """Response rate limiting (RRL) of UDP answers: per client network, per kind of answer.

    Each client /24 (IPv4) or /56 (IPv6) has an account per kind, credited with its
    rate every second up to one second's worth and debited per answer; an answer
    that finds the account empty is dropped, or every ``slip``-th sent truncated.
    Debt is remembered for up to ``window`` seconds of the rate.
    """

    responses: int = 50  # answers with records, per second
    nxdomains: int = 50  # NXDOMAIN and NODATA
    errors: int = 10  # everything else
    window: int = 15
    slip: int = 2
    exempt: tuple[str, ...] = ()
    path: str = ""  # the zone file that says so
    line: int = 0


@dataclass(frozen=True)
class ZoneConfig:
    """One zone as the operator wrote it."""

    origin: str
    path: str
    soa: Soa
    ns: tuple[str, ...]
    glue: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ttl: int = 2100
    negative_ttl: int = 300
    ns_ttl: int = 86400
    txt: str = "Listed, see https://$"
    malformed_answer: bool = False
    access: tuple[tuple[str, str], ...] = ()  # (network, action), in the operator's order
    serves: str = "listings"  # one of SERVES
    codes: dict[str, str] = field(default_factory=dict)  # this zone's own codes, by name
    apex: str = ""  # a sub-zone's parent, whose SOA and NS it is served under; "" for a zone
    export_ipv4_mapped: bool = True  # zone files write ::ffff:a.b.c.d names from the IPv4 data
    transfer: TransferConfig | None = None  # zone transfers to secondaries; None: none (never on a sub-zone)
    dkim: bool = False  # a sub-zone of DKIM signing domains: vendors' terminated tenants are listed here
    keys: str = "off"  # one of KEY_MODES: access keys in query names (rbl.dns.keys)
    key_info: str = ""  # where to get a key, said in every key error answer
    rate_limit: RateLimit | None = None  # RRL of UDP answers; None: none

    @property
    def family(self) -> str:
        """The zone and its sub-zones: what an access key opens (a key names zones, not sub-zones)."""
        return self.apex or self.origin

    @property
    def soa_owner(self) -> str:
        """Where the SOA lives: the zone's own origin, or its parent's for a sub-zone."""
        return self.apex or self.origin

    def access_for(self, client: str | None) -> str:
        """The action for a client address: the first rule whose network holds it."""
        if not self.access or client is None:
            return "allow"
        try:
            address = ipaddress.ip_address(client.split("%")[0])
        except ValueError:
            return "allow"
        for network, action in self.access:
            net = ipaddress.ip_network(network)
            if address.version == net.version and address in net:
                return action
        return "allow"


def _each(node: yamlfile.Located, key: str, values: list, parse: Callable[[str], object], message: str) -> list[str]:
    """Every value through ``parse`` (an ipaddress constructor) as text; the first that fails
    is the error, ``message`` formatted with it, on ``key``."""
    parsed = []
    for value in values:
        try:
            parsed.append(str(parse(str(value))))
        except ValueError:
            raise node.error(message.format(value), key) from None
    return parsed


def _ttl(node: yamlfile.Located, key: str, default: int) -> int:
    value = node.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TTL:
        raise node.error(f"{key} must be a whole number of seconds from 0 to {MAX_TTL}, not {value!r}", key)
    return value


def _name(node: yamlfile.Located, key: str, value: object = None) -> str:
    text = str(node[key] if value is None else value).lower().rstrip(".")
    if not _NAME.match(text):
        raise node.error(f"{key}: {text!r} is not a valid domain name", key)
    return text


def load_zone(path: str | Path) -> list[ZoneConfig]:
    """Read one zone file: its zone, then its sub-zones.

    :raises ConfigError: naming the file and line of the first problem.
    """
    name = str(path)
    data = yamlfile.load(path)
    node = yamlfile.check_keys(
        data,
        {"origin", "ttl", "negative_ttl", "soa", "ns", "txt", "malformed_answer", "access", "serves", "codes",
         "subzones", "export", "transfer", "keys", "key_info", "rate_limit"},
        {"origin", "soa", "ns"},
        "zone",
        name,
        1,
    )
    origin = _name(node, "origin")
    soa_node = yamlfile.check_keys(
        node["soa"], {"mname", "rname", "refresh", "retry", "expire", "ttl"}, {"mname", "rname"},
        "soa", name, node.where("soa"),
    )
    rname = str(soa_node["rname"]).replace("@", ".")
    soa = Soa(
        mname=_name(soa_node, "mname"),
        rname=_name(soa_node, "rname", rname),
        refresh=_ttl(soa_node, "refresh", 3600),
        retry=_ttl(soa_node, "retry", 600),
        expire=_ttl(soa_node, "expire", 604800),
        ttl=_ttl(soa_node, "ttl", 3600),
    )
    ns_node = yamlfile.check_keys(node["ns"], {"ttl", "servers"}, {"servers"}, "ns", name, node.where("ns"))
    servers = ns_node["servers"]
    if not isinstance(servers, list) or not servers:
        raise ns_node.error("ns servers must be a non-empty list", "servers")
    ns: list[str] = []
    glue: dict[str, tuple[str, ...]] = {}
    for server in servers:
        line = getattr(server, "line", ns_node.where("servers"))
        server = yamlfile.check_keys(server, {"name", "addresses"}, {"name"}, "ns server", name, line)
        host = _name(server, "name")
        if host in ns:
            raise server.error(f"name server {host} is named twice", "name")
        ns.append(host)
        addresses = server.get("addresses", [])
        if not isinstance(addresses, list):
            raise server.error("addresses must be a list", "addresses")
        in_zone = host == origin or host.endswith("." + origin)
        if in_zone and not addresses:
            raise server.error(f"{host} is inside {origin}: it needs glue addresses", "name")
        if addresses and not in_zone:
            raise server.error(f"{host} is outside {origin}: glue is only served for names inside it", "addresses")
        parsed = _each(server, "addresses", addresses, ipaddress.ip_address, "{!r} is not an IP address")
        if parsed:
            glue[host] = tuple(parsed)
    txt = node.get("txt", "Listed, see https://$")
    if not isinstance(txt, str) or not txt.isascii():
        raise node.error("txt must be a text of ASCII characters", "txt")
    malformed = node.get("malformed_answer", False)
    if not isinstance(malformed, bool):
        raise node.error("malformed_answer must be true or false", "malformed_answer")
    access = _access(node)
    zone = ZoneConfig(
        origin=origin,
        path=name,
        soa=soa,
        ns=tuple(ns),
        glue=glue,
        ttl=_ttl(node, "ttl", 2100),
        negative_ttl=_ttl(node, "negative_ttl", 300),
        ns_ttl=_ttl(ns_node, "ttl", 86400),
        txt=txt,
        malformed_answer=malformed,
        access=access,
        serves=_serves(node, ("listings", "verbatim")),
        codes=_codes(node),
        export_ipv4_mapped=_export(node),
        transfer=_transfer(node),
        keys=_keys(node),
        key_info=_key_info(node),
        rate_limit=_rate_limit(node),
    )
    return [zone, *_subzones(node, zone)]


def _keys(node: yamlfile.Located) -> str:
    mode = node.get("keys", "off")
    if mode is False:  # YAML reads a bare off as false
        mode = "off"
    if mode not in KEY_MODES:
        raise node.error(f"keys: unknown {mode!r} (expected required, optional or off)", "keys")
    return mode


def _key_info(node: yamlfile.Located) -> str:
    text = node.get("key_info", "")
    if not isinstance(text, str) or not text.isascii() or len(text) > 200:
        raise node.error("key_info must be a text of at most 200 ASCII characters", "key_info")
    return text


def _rate_limit(node: yamlfile.Located) -> RateLimit | None:
    if "rate_limit" not in node:
        return None
    where = node.where("rate_limit")
    rrl = yamlfile.check_keys(node["rate_limit"], {"responses_per_second", "nxdomains_per_second",
                                                   "errors_per_second", "window", "slip", "exempt"},
                              set(), "rate_limit", node.path, where)

    def whole(key: str, default: int, low: int, high: int) -> int:
        value = rrl.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise rrl.error(f"{key} must be a whole number from {low} to {high}, not {value!r}", key)
        return value

    exempt = rrl.get("exempt", [])
    if not isinstance(exempt, list):
        raise rrl.error("exempt must be a list of networks such as 192.0.2.0/24", "exempt")
    return RateLimit(
        responses=whole("responses_per_second", 50, 1, 10**7),
        nxdomains=whole("nxdomains_per_second", 50, 1, 10**7),
        errors=whole("errors_per_second", 10, 1, 10**7),
        window=whole("window", 15, 1, 3600),
        slip=whole("slip", 2, 0, 10),
        exempt=tuple(_each(rrl, "exempt", exempt, lambda t: ipaddress.ip_network(t, strict=False),
                           "exempt: {!r} is not a network such as 192.0.2.0/24")),
        path=node.path, line=where,
    )


def _export(node: yamlfile.Located) -> bool:
    """The ``export`` settings; today one: whether zone files write IPv4-mapped names."""
    if "export" not in node:
        return True
    export = yamlfile.check_keys(node["export"], {"ipv4_mapped"}, set(), "export", node.path, node.where("export"))
    mapped = export.get("ipv4_mapped", True)
    if not isinstance(mapped, bool):
        raise export.error(f"ipv4_mapped must be true or false, not {mapped!r}", "ipv4_mapped")
    return mapped


def _serves(node: yamlfile.Located, allowed: tuple[str, ...]) -> str:
    serves = node.get("serves", "listings")
    if serves not in allowed:
        raise node.error(f"serves: unknown {serves!r} (expected {', '.join(allowed)})", "serves")
    return serves


def _codes(node: yamlfile.Located) -> dict[str, str]:
    from rbl.policy.listing import DEFAULT_CODES, TENANT_CODES, check_code

    if "codes" not in node:
        return {}
    allowed = set({"cloud": CLOUD_CODES, "tenant": TENANT_CODES}.get(node.get("serves"), DEFAULT_CODES))
    codes = yamlfile.check_keys(node["codes"], allowed, set(), "codes", node.path, node.where("codes"))
    return {key: check_code(codes, key, value) for key, value in codes.items()}


def _subzones(node: yamlfile.Located, parent: ZoneConfig) -> list[ZoneConfig]:
    items = node.get("subzones", [])
    if not isinstance(items, list):
        raise node.error("subzones must be a list", "subzones")
    out: list[ZoneConfig] = []
    for item in items:
        line = getattr(item, "line", node.where("subzones"))
        sub = yamlfile.check_keys(item, {"name", "serves", "ttl", "txt", "codes", "dkim"}, {"name", "serves"},
                                  "sub-zone", node.path, line)
        label = _name(sub, "name")
        origin = f"{label}.{parent.origin}"
        if any(z.origin == origin for z in out):
            raise sub.error(f"sub-zone {label} is named twice", "name")
        serves = _serves(sub, SERVES)
        if serves == "tenant" and any(z.serves == "tenant" for z in out):
            raise sub.error("a zone has one tenant sub-zone: it answers for the zone's own listings", "serves")
        dkim = sub.get("dkim", False)
        if not isinstance(dkim, bool):
            raise sub.error(f"dkim must be true or false, not {dkim!r}", "dkim")
        if dkim and serves != "listings":
            raise sub.error("dkim: true lists signing domains: only a sub-zone that serves listings", "dkim")
        if dkim and any(z.dkim for z in out):
            raise sub.error("dkim: true on two sub-zones: terminated tenants would be listed twice", "dkim")
        txt = sub.get("txt", _default_txt(serves, parent))
        if not isinstance(txt, str) or not txt.isascii():
            raise sub.error("txt must be a text of ASCII characters", "txt")
        out.append(dataclasses.replace(
            parent, origin=origin, ttl=_ttl(sub, "ttl", parent.ttl), txt=txt, serves=serves,
            codes=_codes(sub), apex=parent.origin, glue={}, transfer=None, dkim=dkim, rate_limit=None,
        ))
    return out


def _default_txt(serves: str, parent: ZoneConfig) -> str:
    # The cloud zone's TXT describes the range; "$" there is the address asked about.
    # The tenant zone's says implicated or bystander, then this ("$": the address).
    return "" if serves == "cloud" else parent.txt


def _transfer(node: yamlfile.Located) -> TransferConfig | None:
    """The ``transfer:`` mapping. Errors name file and line, never a secret."""
    if "transfer" not in node:
        return None
    where = node.where("transfer")
    xfr = yamlfile.check_keys(node["transfer"], {"allow", "secondaries", "key", "tsig", "history"}, set(),
                              "transfer", node.path, where)
    allow = xfr.get("allow", list(LOOPBACK))
    if not isinstance(allow, list):
        raise xfr.error("allow must be a list of networks such as 192.0.2.0/24", "allow")
    networks = _each(xfr, "allow", allow, ipaddress.ip_network,
                     "allow: {!r} is not a network such as 192.0.2.0/24")
    secondaries = xfr.get("secondaries", [])
    if not isinstance(secondaries, list):
        raise xfr.error("secondaries must be a list of addresses such as 192.0.2.1 or \"[2001:db8::1]:53\"",
                        "secondaries")
    endpoints = []
    for item in secondaries:
        try:
            endpoints.append(parse_endpoint(str(item), 53, remote=True))
        except RblError:
            raise xfr.error(f"secondaries: {item!r} is not an IP address with an optional port, such as "
                            "192.0.2.1:53 or [2001:db8::1]:53", "secondaries") from None
    if len(set(endpoints)) != len(endpoints):
        raise xfr.error("secondaries: an address is named twice", "secondaries")
    tsig = xfr.get("tsig", "required")
    if tsig not in TSIG_MODES:
        raise xfr.error(f"tsig: unknown {tsig!r} (expected required or optional)", "tsig")
    history = xfr.get("history", 64)
    if not isinstance(history, int) or isinstance(history, bool) or not 0 <= history <= MAX_HISTORY:
        raise xfr.error(f"history must be a whole number of serials from 0 to {MAX_HISTORY}, not {history!r}",
                        "history")
    key = _tsig_key(xfr) if "key" in xfr else None
    if key is None and tsig == "required":
        message = ("tsig: required (the default) needs a key (name, algorithm, and secret_file or secret); "
                   "or say tsig: optional to allow unsigned transfers")
        raise xfr.error(message, "tsig") if "tsig" in xfr else node.error(message, "transfer")
    return TransferConfig(allow=tuple(networks), secondaries=tuple(endpoints), key=key, tsig=tsig, history=history)


def _tsig_key(xfr: yamlfile.Located) -> TsigKey:
    import base64
    import binascii

    key = yamlfile.check_keys(xfr["key"], {"name", "algorithm", "secret", "secret_file"}, {"name"},
                              "transfer key", xfr.path, xfr.where("key"))
    name = _name(key, "name")
    algorithm = str(key.get("algorithm", "hmac-sha256")).lower().rstrip(".")
    if algorithm not in TSIG_ALGORITHMS:
        raise key.error(f"algorithm: unknown {algorithm!r} (expected {', '.join(TSIG_ALGORITHMS)})", "algorithm")
    if ("secret" in key) == ("secret_file" in key):
        raise key.error("transfer key needs exactly one of secret (base64) and secret_file")
    if "secret_file" in key:
        path = Path(xfr.path).parent / str(key["secret_file"])
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise key.error(f"secret_file: cannot read {path}: {getattr(exc, 'strerror', None) or 'not ASCII'}",
                            "secret_file") from None
        field_name = "secret_file"
    else:
        text, field_name = key["secret"], "secret"
        if not isinstance(text, str):
            raise key.error("secret must be base64 text", "secret")
    # The value is never part of a message: an error must not leak a secret.
    try:
        secret = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise key.error(f"{field_name}: the secret is not valid base64", field_name) from None
    if len(secret) < 16:
        raise key.error(f"{field_name}: the secret is {len(secret)} bytes; at least 16 are needed "
                        "(e.g. `openssl rand -base64 32`)", field_name)
    return TsigKey(name=name, algorithm=algorithm, secret=secret)


def _access(node: yamlfile.Located) -> tuple[tuple[str, str], ...]:
    rules = node.get("access", [])
    if not isinstance(rules, list):
        raise node.error("access must be a list of rules", "access")
    out: list[tuple[str, str]] = []
    for rule in rules:
        line = getattr(rule, "line", node.where("access"))
        rule = yamlfile.check_keys(rule, {"networks", "action"}, {"networks", "action"}, "access rule",
                                   node.path, line)
        if rule["action"] not in ACCESS_ACTIONS:
            raise rule.error(f"unknown action {rule['action']!r} (expected allow, refuse or error)", "action")
        networks = rule["networks"]
        if not isinstance(networks, list) or not networks:
            raise rule.error("networks must be a non-empty list of CIDRs", "networks")
        for network in networks:
            try:
                out.append((str(ipaddress.ip_network(str(network))), rule["action"]))
            except ValueError:
                raise rule.error(f"{network!r} is not a network such as 192.0.2.0/24", "networks") from None
    return tuple(out)


def load_zones(zones_dir: str | Path) -> list[ZoneConfig]:
    """Every ``*.yaml`` zone in the folder, sorted by origin.

    :raises ConfigError: for a broken file, a missing folder, or two files with one origin.
    """
    folder = Path(zones_dir)
    if not folder.is_dir():
        raise ConfigError("no such zones folder", str(folder))
    zones: dict[str, ZoneConfig] = {}
    for path in sorted(folder.glob("*.yaml")):
        for zone in load_zone(path):
            if zone.origin in zones:
                raise ConfigError(f"origin {zone.origin} is already served by {zones[zone.origin].path}",
                                  str(path), 1)
            zones[zone.origin] = zone
    if not zones:
        raise ConfigError("no zone files (*.yaml) in the zones folder", str(folder))
    # One rate limiter answers for the whole server (an attack's names need not be in any zone).
    limits = [z.rate_limit for z in zones.values() if z.rate_limit is not None]
    for other in limits[1:]:
        if dataclasses.replace(other, path="", line=0) != dataclasses.replace(limits[0], path="", line=0):
            raise ConfigError(f"rate_limit differs from the one in {limits[0].path}: one server has one rate "
                              "limiter, so zone files that set it must agree", other.path, other.line)
    return sorted(zones.values(), key=lambda z: z.origin)
