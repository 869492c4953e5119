"""The listing store: SQLite (WAL) through sqlite-utils, the single source of truth."""

from rbl.store.listings import ListingStore, Listing

__all__ = ["ListingStore", "Listing"]
