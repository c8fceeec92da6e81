"""Ledger records: usage rows, report groups, balance entries and budget counters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

GroupBy = Literal["key", "model", "day", "user", "tag"]
GROUP_BY_CHOICES: tuple[GroupBy, ...] = ("key", "model", "day", "user", "tag")


# Not frozen: one is built per request on the request path, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs five times as much. Nothing mutates a row after it is made.
@dataclass(slots=True)
class LedgerRow:
    """One request. ``id`` is made by the gateway once per request and is the idempotency key:
    a replayed row is inserted at most once. ``request_id`` may come from the caller
    (``x-request-id``) and is not unique, so a caller repeating it cannot erase its own rows."""

    id: str
    request_id: str
    created_at: datetime
    key_name: str | None
    route: str
    model_requested: str | None
    model_used: str | None
    deployment: str | None
    status: int
    outcome: str
    error_kind: str | None
    attempts: int
    stream: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    latency_ms: float
    upstream_ms: float
    ttft_ms: float | None
    cache_hit: bool
    # Every attempt, ``deployment:outcome:status:ms`` comma-separated (relay.attempts).
    attempt_log: str = ""
    # The part of cache_write_tokens written to Anthropic's 1-hour cache (priced 2x input).
    cache_write_1h_tokens: int = 0
    # Cost attribution: the caller's end user and its tags (accounting.attribution).
    end_user: str | None = None
    tags: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the spill file); ``from_json`` reverses it."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerRow:
        values = dict(data)
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which ledger rows a usage report adds up (besides its time range); None matches all."""

    key_name: str | None = None
    end_user: str | None = None
    tag: tuple[str, str] | None = None
    # The model used (or, when none answered, the one requested) and the HTTP status.
    model: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Totals of ledger rows sharing one ``group`` value (a key name, a model, a UTC day, an end
    user or one tag's value)."""

    group: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class BalanceEntry:
    """Money added to (or taken from, when negative) a key's prepaid balance."""

    id: str
    key_name: str
    amount_usd: float
    kind: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetCounters:
    """A key's enforcement counters: spend in ``month`` (``YYYY-MM``, UTC), spend charged to its
    prepaid balance, and cost reserved by requests in flight."""

    key_name: str
    month: str
    month_spent_usd: float
    balance_spent_usd: float
    reserved_usd: float


@dataclass(frozen=True, slots=True)
class SpendDelta:
    """What finished requests of one key add up to: reserved cost to release, cost to charge."""

    key_name: str
    released_usd: float
    spent_usd: float
    balance_spent_usd: float


@dataclass(frozen=True, slots=True)
class ReserveAsk:
    """Reserve ``amount_usd`` for ``key_name`` unless it would pass ``monthly_cap_usd`` or the
    prepaid ``credit_usd`` (None: no such limit)."""

    key_name: str
    month: str
    amount_usd: float
    monthly_cap_usd: float | None
    credit_usd: float | None
    ttl_seconds: float


def ledger_row_from(r: Sequence[Any], created_at: datetime) -> LedgerRow:
    """A row in the column order of both backends' ledger SELECTs."""
    return LedgerRow(
        id=r[0],
        request_id=r[1],
        created_at=created_at,
        key_name=r[3],
        route=r[4],
        model_requested=r[5],
        model_used=r[6],
        deployment=r[7],
        status=int(r[8]),
        outcome=r[9],
        error_kind=r[10],
        attempts=int(r[11]),
        stream=bool(r[12]),
        input_tokens=int(r[13]),
        output_tokens=int(r[14]),
        cache_read_tokens=int(r[15]),
        cache_write_tokens=int(r[16]),
        cost_usd=float(r[17]),
        latency_ms=float(r[18]),
        upstream_ms=float(r[19]),
        ttft_ms=None if r[20] is None else float(r[20]),
        cache_hit=bool(r[21]),
        attempt_log=str(r[22] or ""),
        cache_write_1h_tokens=int(r[23] or 0),
        end_user=r[24],
        tags=tags_from(r[25]),
    )


def tags_from(text: str | None) -> dict[str, str] | None:
    """The ``tags`` column (a JSON object in both backends) as a dict."""
    return None if not text else dict(json.loads(text))


def tags_text(tags: dict[str, str] | None) -> str | None:
    """Tags as the ``tags`` column stores them: canonical JSON (sorted keys, no spaces)."""
    return None if not tags else json.dumps(tags, sort_keys=True, separators=(",", ":"))


def usage_group_from(r: Sequence[Any]) -> UsageGroup:
    return UsageGroup(
        group=str(r[0]),
        requests=int(r[1]),
        errors=int(r[2] or 0),
        input_tokens=int(r[3] or 0),
        output_tokens=int(r[4] or 0),
        cache_read_tokens=int(r[5] or 0),
        cache_write_tokens=int(r[6] or 0),
        cost_usd=float(r[7] or 0.0),
    )


def budget_counters_from(r: Sequence[Any]) -> BudgetCounters:
    return BudgetCounters(
        key_name=r[0],
        month=r[1],
        month_spent_usd=float(r[2]),
        balance_spent_usd=float(r[3]),
        reserved_usd=float(r[4]),
    )
