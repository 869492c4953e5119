"""Settings as data: where every command finds the store, policy and zones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    help: str


SETTINGS = (
    Setting("db", "RBL_DB", "rbl.db", "the listing store, a SQLite file (created if missing)"),
    Setting("policy", "RBL_POLICY", "policy", "the policy folder (listing.yaml, vendors/)"),
    Setting("zones", "RBL_ZONES", "zones", "the zones folder (one <origin>.yaml per zone)"),
)

DNS_DEFAULT = "127.0.0.1:5353"
HTTP_DEFAULT = "127.0.0.1:8080"
