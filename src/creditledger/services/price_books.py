"""The price book's versions, kept in memory by each process for usage pricing and
authorization, and reloaded only when a new version has been written."""

from __future__ import annotations

import threading

from creditledger.domain.pricing import PriceBook
from creditledger.services.ports import UnitOfWork


class PriceBooks:
    """Every version of the price book, oldest first, as of the newest version id seen.

    Versions are only ever added (``PUT /v1/prices`` writes a new one), so the newest
    id names the whole list exactly: a process reloads it when another id shows up,
    whichever process wrote it.
    """

    def __init__(self) -> None:
        self._version = -1
        self._books: list[PriceBook] = []
        self._lock = threading.Lock()

    def current(self, uow: UnitOfWork) -> list[PriceBook]:
        """The versions as the database has them now (one indexed read to check)."""
        return self.at_version(uow, uow.pricing.latest_book_id())

    def at_version(self, uow: UnitOfWork, version: int) -> list[PriceBook]:
        """The versions up to ``version`` (the newest id, read by the caller)."""
        if version == self._version:
            return self._books
        books = uow.pricing.books()
        with self._lock:
            # A newer version written meanwhile may be in ``books``: the next call sees
            # its id and reads again, so the cache is never older than the id it holds.
            self._version, self._books = version, books
        return books
