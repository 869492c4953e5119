"""rbl: a DNS blocklist that is fair to tenants of shared cloud address space."""

__version__ = "0.1.0"
