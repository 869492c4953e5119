"""Zone files: the shipped one loads; each broken fixture names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbl.errors import ConfigError
from rbl.zone.config import load_zone, load_zones

FIXTURES = Path(__file__).parent / "fixtures" / "zones"
ROOT = Path(__file__).resolve().parents[1]


def test_shipped_demo_zone():
    zone, *subzones = load_zones(ROOT / "zones")
    assert [z.origin for z in subzones] == ["cloud.bl.example", "dkim.bl.example", "tenant.bl.example"]
    assert [(z.serves, z.dkim) for z in subzones] == [("cloud", False), ("listings", True), ("tenant", False)]
    assert zone.origin == "bl.example"
    assert zone.ns == ("ns1.bl.example", "ns2.bl.example")
    assert zone.glue["ns1.bl.example"] == ("127.0.0.1", "::1")
    assert "$" in zone.txt and zone.negative_ttl < zone.ttl


SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQh"  # the transfer fixtures' secret, which no message may show


@pytest.mark.parametrize("name, line, message", [
    ("unknown-key", 3, "unknown key 'colour' in zone"),
    ("missing-origin", 1, "lacks the required key 'origin'"),
    ("negative-ttl", 2, "ttl must be a whole number"),
    ("bad-origin", 1, "'bl..example' is not a valid domain name"),
    ("duplicate-key", 3, "duplicate key 'ttl'"),
    ("yaml-syntax-error", 3, "YAML syntax error"),
    ("glue-not-an-address", 8, "'not-an-ip' is not an IP address"),
    ("in-zone-ns-without-glue", 8, "ns2.bl.example is inside bl.example: it needs glue"),
    ("soa-without-mname", 3, "soa lacks the required key 'mname'"),
    ("txt-not-text", 8, "txt must be a text"),
    ("transfer-unknown-key", 11, "unknown key 'alow' in transfer"),
    ("transfer-bad-allow", 10, "allow: '192.0.2.0/33' is not a network"),
    ("transfer-secondary-not-an-address", 11, "secondaries: 'ns2.example:53' is not an IP address"),
    ("transfer-required-without-key", 9, "tsig: required (the default) needs a key"),
    ("transfer-secret-not-base64", 13, "secret: the secret is not valid base64"),
    ("transfer-missing-secret-file", 12, "secret_file: cannot read"),
    ("transfer-unknown-algorithm", 10, "algorithm: unknown 'hmac-md5'"),
    ("transfer-negative-history", 11, "history must be a whole number of serials from 0 to 10000, not -1"),
    ("transfer-short-secret", 10, "the secret is 12 bytes; at least 16 are needed"),
])
def test_broken_zone_files_name_file_and_line_never_the_secret(name, line, message):
    path = FIXTURES / f"{name}.yaml"
    with pytest.raises(ConfigError) as caught:
        load_zone(path)
    text = str(caught.value)
    assert text.startswith(f"{path}, line {line}: "), text
    assert message in text
    assert SECRET not in text and "c2hvcnQtc2VjcmV0" not in text


def test_two_files_for_one_origin(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((ROOT / "zones" / "bl.example.yaml").read_text())
    with pytest.raises(ConfigError, match=r"b\.yaml, line 1: origin bl.example is already served by .*a\.yaml"):
        load_zones(tmp_path)


def test_empty_zones_folder(tmp_path):
    with pytest.raises(ConfigError, match="no zone files"):
        load_zones(tmp_path)




def test_transfer_settings_load_with_defaults_and_hide_the_secret(tmp_path):
    (tmp_path / "xfr.key").write_text(SECRET + "\n")
    text = (ROOT / "zones" / "bl.example.yaml").read_text() + (
        "transfer:\n"
        "  secondaries: ['127.0.0.1:5300', '::1', '[::1]:5301']\n"
        "  key: {name: RBL-xfr., secret_file: xfr.key}\n")
    (tmp_path / "bl.example.yaml").write_text(text)
    zone, *subzones = load_zones(tmp_path)
    xfr = zone.transfer
    assert xfr.secondaries == (("127.0.0.1", 5300), ("::1", 53), ("::1", 5301))
    assert xfr.allow == ("127.0.0.0/8", "::1/128") and xfr.tsig == "required" and xfr.history == 64
    assert xfr.key.name == "rbl-xfr" and xfr.key.algorithm == "hmac-sha256"
    assert xfr.key.secret == b"secret-secret-secret!"
    assert all(sub.transfer is None for sub in subzones)  # a sub-zone is transferred with its parent
    assert "secret-secret" not in repr(zone) and SECRET not in repr(zone)
    assert xfr.allows("127.0.0.9") and xfr.allows("::1") and xfr.allows("::ffff:127.0.0.1")
    assert not xfr.allows("192.0.2.1") and not xfr.allows(None)


def test_policy_check_stops_at_a_broken_transfer_setting_without_showing_the_secret(tmp_path):
    import subprocess
    import sys

    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "bl.example.yaml").write_text((FIXTURES / "transfer-short-secret.yaml").read_text())
    proc = subprocess.run([sys.executable, "-m", "rbl", "policy", "check", "--policy", str(ROOT / "policy"),
                           "--zones", str(zones), "--db", str(tmp_path / "rbl.db")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{zones / 'bl.example.yaml'}, line 10: secret: the secret is 12 bytes" in proc.stderr
    assert "c2hvcnQtc2VjcmV0" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
