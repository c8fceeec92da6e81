"""SQL text the SQLite and PostgreSQL backends share: the column lists the row mappers
(``records.py``, ``ledger_records.py``) read in order, and the builder of the usage-totals
queries. Statements that differ by more than their placeholders stay in each backend."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from relaygate.store.ledger_records import GroupBy, UsageFilter

KEY_COLUMNS = """
    id, name, key_hash, key_prefix, owner, team, allowed_models, priority, rps, burst, rpm, tpm,
    max_concurrent, monthly_budget_usd, balance_usd, expires_at, disabled, created_at, revoked_at
"""
LEDGER_COLUMNS = """
    id, request_id, created_at, key_name, route, model_requested, model_used, deployment, status,
    outcome, error_kind, attempts, stream, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd, latency_ms, upstream_ms, ttft_ms, cache_hit, attempt_log,
    cache_write_1h_tokens, end_user, tags
"""
_TOTALS = """
    count(*),
    sum(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END),
    sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cost_usd)
"""
_GROUPS: dict[str, str] = {
    "key": "coalesce(key_name, '(none)')",
    "model": "coalesce(model_used, model_requested, '(none)')",
    "user": "coalesce(end_user, '(none)')",
}


class UsageSql(ABC):
    """What a backend brings to the usage-totals query: placeholders, its UTC-day expression and
    how it reads one tag of the ``tags`` JSON column."""

    day: str

    @abstractmethod
    def placeholder(self, number: int) -> str:
        """The ``number``-th (from 1) parameter's placeholder."""

    @abstractmethod
    def tag_value(self, key_param: str) -> str:
        """An expression for the value of the tag whose key is the parameter ``key_param``."""

    @abstractmethod
    def tag_key_param(self, key: str) -> object:
        """The parameter value ``tag_value`` expects for ``key``."""

    @abstractmethod
    def tag_match(self, key: str, value: str, arg: Callable[[object], str]) -> str:
        """A condition true for rows tagged ``key=value``; ``arg`` adds a parameter."""

    def usage_groups(
        self,
        by: GroupBy,
        since: object,
        until: object,
        where: UsageFilter,
        tag_key: str | None = None,
    ) -> tuple[str, list[object]]:
        """Totals per group for ``since <= created_at < until`` rows matching ``where``; by
        ``tag`` groups by the value of tag ``tag_key``. Returns the SQL and its parameters."""
        params: list[object] = []

        def arg(value: object) -> str:
            params.append(value)
            return self.placeholder(len(params))

        if by == "tag":
            if tag_key is None:
                raise ValueError("grouping by tag needs a tag key")
            group = f"coalesce({self.tag_value(arg(self.tag_key_param(tag_key)))}, '(none)')"
        else:
            group = self.day if by == "day" else _GROUPS[by]
        conditions = [f"created_at >= {arg(since)}", f"created_at < {arg(until)}"]
        conditions += self._matching(where, arg)
        sql = (
            f"SELECT {group} AS grp, {_TOTALS} FROM usage_ledger "
            f"WHERE {' AND '.join(conditions)} GROUP BY grp ORDER BY grp"
        )
        return sql, params

    def recent_rows(
        self, limit: int, where: UsageFilter, offset: int = 0
    ) -> tuple[str, list[object]]:
        """The newest ``limit`` ledger rows ``where`` matches after skipping ``offset`` of them
        (columns: LEDGER_COLUMNS)."""
        params: list[object] = []

        def arg(value: object) -> str:
            params.append(value)
            return self.placeholder(len(params))

        conditions = self._matching(where, arg)
        sql = f"SELECT {LEDGER_COLUMNS} FROM usage_ledger"
        if conditions:
            sql += f" WHERE {' AND '.join(conditions)}"
        sql += f" ORDER BY created_at DESC LIMIT {arg(limit)}"
        if offset:
            sql += f" OFFSET {arg(offset)}"
        return sql, params

    def _matching(self, where: UsageFilter, arg: Callable[[object], str]) -> list[str]:
        conditions = []
        if where.key_name is not None:
            conditions.append(f"key_name = {arg(where.key_name)}")
        if where.end_user is not None:
            conditions.append(f"end_user = {arg(where.end_user)}")
        if where.tag is not None:
            conditions.append(self.tag_match(*where.tag, arg))
        if where.model is not None:
            conditions.append(f"{_GROUPS['model']} = {arg(where.model)}")
        if where.status is not None:
            conditions.append(f"status = {arg(where.status)}")
        return conditions
