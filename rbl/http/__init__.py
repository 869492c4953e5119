"""The HTTP API (aiohttp): explanations now; vendors' evidence and the operator's routes next."""
