"""Numbered schema migrations, one list per backend, applied in order when a store opens.

Each backend records applied versions in ``schema_migrations(version, applied_at)`` and applies a
migration's statements and its version row in one transaction, under a lock, so several processes
opening the same database at once apply each migration exactly once. New tables and columns come
as new migrations appended to the list; an applied migration is never edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``statements`` run in order inside one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3 ... with no gap, so a missing file cannot go unnoticed."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migration '{migration.name}' has version {migration.version}, expected {expected}"
            )


def pending(migrations: Sequence[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in order."""
    return [m for m in migrations if m.version not in applied]
