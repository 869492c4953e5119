"""The operator's policy, as pure decisions: the listing rules (listing), cloud ranges
from the vendors' feeds (feeds, fetch, vendors, classify), vendors' remediation
and tiers (remediation, standing), the evidence and delisting rules (evidence,
delisting) and the decision table (decide). It reads files, never the database:
the store's rows come in, decisions go out.
"""
