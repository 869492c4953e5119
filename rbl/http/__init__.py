"""The HTTP API (aiohttp): lookups and explanations, vendors' evidence and standing,
delisting requests, the operator's listings and metrics, the OpenAPI document.
"""
