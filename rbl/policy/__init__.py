"""The operator's policy: listing codes and expiry (and, later, vendors and ranges)."""
