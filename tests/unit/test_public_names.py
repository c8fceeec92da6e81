"""The public names each package exports (its ``__all__``) and the modules it holds.

Pinned so that a change to a package's surface is a deliberate edit here, seen in review: the
cache, sessions and jobs plug into these names. Every exported name must resolve.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

EXPORTS: dict[str, tuple[str, ...]] = {
    "relaygate": ("__version__",),
    "relaygate.accounting": (
        "Accounting",
        "Bill",
        "BillLine",
        "Budgets",
        "FxTable",
        "Hold",
        "LedgerStats",
        "LedgerWriter",
        "LocalBudgets",
        "MonthClock",
        "Price",
        "PriceBook",
        "ReportLine",
        "SharedBudgets",
        "SpillFile",
        "UnknownCurrencyError",
        "UsageReport",
        "billable_usage",
        "build_accounting",
        "check_group_by",
        "has_budget",
        "ledger_row",
        "month_bill",
        "parse_month",
        "usage_report",
    ),
    "relaygate.admin": (
        "handle_admin",
        "is_admin_path",
    ),
    "relaygate.admission": (
        "AdmissionQueue",
        "Admitter",
        "DegradeController",
        "DegradeLevels",
        "LagMonitor",
        "Level",
        "QueueRefusedError",
        "Ticket",
        "build_admitter",
    ),
    "relaygate.auth": (
        "BootstrapResult",
        "CREDENTIALS_FILE",
        "DEFAULT_KEY_NAME",
        "KeyCache",
        "NewKey",
        "bearer_token",
        "bootstrap_if_empty",
        "check_model",
        "display_prefix",
        "extract_api_key",
        "generate_admin_token",
        "generate_api_key",
        "hash_key",
        "key_status",
        "new_api_key",
    ),
    "relaygate.capacity": (
        "AdaptiveLimits",
        "DeploymentSlots",
        "GradientLimit",
        "Pool",
        "Slot",
        "SlotSource",
        "pool_of",
    ),
    "relaygate.cli": (),
    "relaygate.core": (),
    "relaygate.dialects": (),
    "relaygate.dialects.anthropic": (
        "AnthropicDialect",
        "AnthropicStreamEncoder",
    ),
    "relaygate.dialects.openai": (
        "OpenAIDialect",
        "OpenAIStreamEncoder",
    ),
    "relaygate.edge": (),
    "relaygate.limits": (
        "Admission",
        "BucketAsk",
        "BucketKind",
        "BucketSettle",
        "Lease",
        "LimiterUnavailableError",
        "MemoryLimiter",
        "RateLimiter",
        "RedisLimiter",
        "ResilientLimiter",
    ),
    "relaygate.mock": (
        "FAULT_HEADER",
        "FAULT_KINDS",
        "FaultPlan",
        "MOCK_MODELS",
        "MockApp",
        "build_reply",
        "create_mock_app",
        "estimate_input_tokens",
        "reply_events",
    ),
    "relaygate.observability": (),
    "relaygate.providers": (),
    "relaygate.providers.anthropic": (
        "AnthropicProvider",
        "AnthropicStreamParser",
    ),
    "relaygate.providers.openai": (
        "OpenAIProvider",
        "OpenAIStreamParser",
    ),
    "relaygate.relay": (),
    "relaygate.routing": (),
    "relaygate.settings": (
        "ConfigError",
        "DeploymentSettings",
        "ModelSettings",
        "Settings",
        "config_path_from_env",
        "load_settings",
        "resolve_api_key",
    ),
    "relaygate.store": (
        "BalanceEntry",
        "BudgetCounters",
        "DuplicateNameError",
        "GROUP_BY_CHOICES",
        "GroupBy",
        "KeyRecord",
        "KeySpec",
        "KeyStore",
        "LedgerRow",
        "LedgerStore",
        "ReserveAsk",
        "SpendDelta",
        "StoreDataError",
        "StoreError",
        "StoreUnavailableError",
        "UPDATABLE_FIELDS",
        "UsageFilter",
        "UsageGroup",
        "create_key_store",
        "create_ledger_store",
        "is_shared_url",
        "open_store",
        "redact_url",
    ),
    "relaygate.store.postgres": ("PostgresKeyStore",),
    "relaygate.store.sqlite": ("SqliteKeyStore",),
    "relaygate.transport": (),
    "relaygate.web": (),
}

MODULES: dict[str, tuple[str, ...]] = {
    "relaygate": (
        "app",
        "recovery",
        "services",
    ),
    "relaygate.accounting": (
        "attribution",
        "budget",
        "budget_shared",
        "credit",
        "dead_letter",
        "default_prices",
        "fx",
        "ledger",
        "ledger_alarms",
        "metrics",
        "pricing",
        "reports",
        "service",
        "spill",
        "usage",
    ),
    "relaygate.admin": (
        "http",
        "keys",
        "payloads",
        "routes",
        "usage",
    ),
    "relaygate.admission": (
        "build",
        "degrade",
        "gate",
        "messages",
        "metrics",
        "overload",
        "queue",
    ),
    "relaygate.auth": (
        "bootstrap",
        "cache",
        "keys",
        "metrics_access",
        "snapshot",
    ),
    "relaygate.capacity": (
        "adaptive",
        "slots",
    ),
    "relaygate.cli": (
        "keys",
        "keys_manage",
        "main",
        "mock",
        "serve",
        "usage",
        "workers",
    ),
    "relaygate.core": (
        "background",
        "capacity",
        "context",
        "errors",
        "estimate",
        "events",
        "json_depth",
        "redact",
        "sse",
        "types",
    ),
    "relaygate.dialects": ("base",),
    "relaygate.dialects.anthropic": (
        "content",
        "decode",
        "dialect",
        "encode",
        "errors",
    ),
    "relaygate.dialects.openai": (
        "decode",
        "dialect",
        "encode",
        "errors",
        "messages",
    ),
    "relaygate.edge": (
        "handler",
        "routes",
        "system_routes",
    ),
    "relaygate.limits": (
        "asks",
        "limiter",
        "memory",
        "redis",
        "releaser",
        "resilient",
    ),
    "relaygate.mock": (
        "app",
        "asgi",
        "chat",
        "directives",
        "engine",
        "faults",
        "schema",
        "stats",
    ),
    "relaygate.observability": (
        "logging",
        "metrics",
    ),
    "relaygate.providers": (
        "base",
        "registry",
    ),
    "relaygate.providers.anthropic": (
        "errors",
        "provider",
        "request",
        "response",
        "stream",
        "translate",
    ),
    "relaygate.providers.openai": (
        "errors",
        "provider",
        "request",
        "response",
        "stream",
    ),
    "relaygate.relay": (
        "attempts",
        "count_tokens",
        "json_answer",
        "stream",
        "walk",
        "whole",
    ),
    "relaygate.routing": (
        "balance",
        "breaker",
        "catalog",
        "deadline",
        "health",
        "planner",
        "policy",
        "retry",
    ),
    "relaygate.settings": (
        "accounting",
        "credentials",
        "defaults",
        "limits",
        "load",
        "model",
        "routing",
    ),
    "relaygate.store": (
        "errors",
        "factory",
        "ledger_records",
        "lifecycle",
        "migrations",
        "protocols",
        "records",
        "sql",
        "urls",
    ),
    "relaygate.store.postgres": (
        "connection",
        "key_store",
        "ledger_queries",
        "ledger_store",
        "migrations",
        "queries",
    ),
    "relaygate.store.sqlite": (
        "connection",
        "key_store",
        "ledger_queries",
        "ledger_store",
        "migrations",
        "queries",
    ),
    "relaygate.transport": (
        "base",
        "http",
        "inprocess",
    ),
    "relaygate.web": (
        "request",
        "responses",
    ),
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_package_exports_exactly_its_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(EXPORTS[package])
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it does not define"


@pytest.mark.parametrize("package", sorted(MODULES))
def test_package_holds_exactly_its_pinned_modules(package: str) -> None:
    folder = SRC.joinpath(*package.split("."))
    found = sorted(p.stem for p in folder.glob("*.py") if p.name != "__init__.py")
    assert found == sorted(MODULES[package])


def test_every_package_is_pinned() -> None:
    packages = {".".join(init.parent.relative_to(SRC).parts) for init in SRC.rglob("__init__.py")}
    assert packages == set(EXPORTS) == set(MODULES)
