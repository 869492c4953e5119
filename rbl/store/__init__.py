"""The store: one SQLite database (WAL) through sqlite-utils, the single source of truth.

``database`` is the connection, the migrations (``schema``), the clock, write
transactions, the generation and the audit log; ``listings`` adds the listing
queries (:class:`ListingStore`, what every caller opens); ``tokens``,
``evidence`` and ``delisting`` wrap one for their tables; ``cases`` reads a
vendor's cases as columns; ``formats`` parses imported lists. The store imports
only the base modules: what the policy decides comes in as values.
"""

from rbl.store.database import Database
from rbl.store.listings import Listing, ListingStore

__all__ = ["Database", "ListingStore", "Listing"]
