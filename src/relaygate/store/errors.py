"""Store errors: every driver error is mapped to one of these inside its backend, once.

Messages never contain a database password; backends redact URLs before naming them.
"""

from __future__ import annotations


class StoreError(Exception):
    """A storage operation failed (a bug in a query, a constraint, a closed store)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or refused the connection; retrying later may succeed."""


class StoreDataError(StoreError):
    """The database rejected the values of a statement (out of range, invalid text, a violated
    constraint): the same rows fail every time, so retrying them cannot help."""


class DuplicateNameError(StoreError):
    """A key with this name already exists; names are unique, revoked keys included."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a key named '{name}' already exists")
        self.name = name
