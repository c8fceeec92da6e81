"""Request counters the mock exposes at ``GET /mock/stats`` so tests can see what reached it."""

from __future__ import annotations

from typing import Any


class MockStats:
    """Counts of model requests by path and status, and how many were in flight at once."""

    __slots__ = ("by_path", "by_status", "in_flight", "max_in_flight", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def enter(self, path: str) -> None:
        """A model request arrived."""
        self.requests += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def leave(self) -> None:
        """A model request finished (answered, failed or abandoned)."""
        self.in_flight -= 1

    def status(self, status: int) -> None:
        """A response head was sent with ``status``."""
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def reset(self) -> None:
        """Zero every counter except the requests still in flight."""
        self.requests = 0
        self.by_path = {}
        self.by_status = {}
        self.max_in_flight = self.in_flight

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "by_status": dict(self.by_status),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }
