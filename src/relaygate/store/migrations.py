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


# Versions held for a migration written on a parallel branch: the sequence may skip them until it
# lands. A database that applied a later version first still gets the held one (``pending`` looks
# at the applied set, not at the highest version); drop the number here once it is in the list.
RESERVED_VERSIONS: frozenset[int] = frozenset({5})


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3 ... with no gap but a reserved one, so a missing migration
    cannot go unnoticed."""
    expected = 1
    for migration in migrations:
        while expected in RESERVED_VERSIONS and migration.version != expected:
            expected += 1
        if migration.version != expected:
            raise ValueError(
                f"migration '{migration.name}' has version {migration.version}, expected {expected}"
            )
        expected += 1


def pending(migrations: Sequence[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in order."""
    return [m for m in migrations if m.version not in applied]
