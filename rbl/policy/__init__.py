"""The operator's policy, as pure decisions: the listing rules (listing), cloud ranges
from the vendors' feeds (feeds, vendors, classify; fetch refreshes the feed files),
vendors' remediation scores and tiers (remediation, standing), the evidence and
delisting request bodies (evidence, delisting) and the decision table (decide).
It reads the policy folder, never the database: the store's rows and columns
come in (it imports the store's types, not its connection), decisions go out.
"""
