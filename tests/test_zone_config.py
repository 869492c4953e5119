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
    assert [z.origin for z in subzones] == ["cloud.bl.example", "dkim.bl.example"]
    assert zone.origin == "bl.example"
    assert zone.ns == ("ns1.bl.example", "ns2.bl.example")
    assert zone.glue["ns1.bl.example"] == ("127.0.0.1", "::1")
    assert "$" in zone.txt and zone.negative_ttl < zone.ttl


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
])
def test_broken_zone_files_name_file_and_line(name, line, message):
    path = FIXTURES / f"{name}.yaml"
    with pytest.raises(ConfigError) as caught:
        load_zone(path)
    text = str(caught.value)
    assert text.startswith(f"{path}, line {line}: "), text
    assert message in text


def test_two_files_for_one_origin(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((ROOT / "zones" / "bl.example.yaml").read_text())
    with pytest.raises(ConfigError, match=r"b\.yaml, line 1: origin bl.example is already served by .*a\.yaml"):
        load_zones(tmp_path)


def test_empty_zones_folder(tmp_path):
    with pytest.raises(ConfigError, match="no zone files"):
        load_zones(tmp_path)
