"""The runtime's store: one interface, SQLite by default and PostgreSQL for production.

SQL is written once, with ``:name`` parameters and a few dialect hooks (the database clock,
intervals, JSON and ids); each backend turns it into its own form. Every write runs in an
explicit transaction; the database clock is the only clock (docs/reliability.md §2.5).
"""

from __future__ import annotations

from ccbmdm.runtime.store.base import (
    Store,
    StoreError,
    StoreUnavailable,
    Transaction,
    open_store,
)

__all__ = ["Store", "StoreError", "StoreUnavailable", "Transaction", "open_store"]
