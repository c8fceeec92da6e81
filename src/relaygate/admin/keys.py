"""``/admin/keys``: create, list, show, change and revoke keys; top up and inspect balances.

Every change reaches this process's key cache at once (``invalidate``) and other gateway
processes within ``key_cache_refresh_seconds``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.accounting import credit
from relaygate.admin.http import AdminError, parse_payload, read_object, send_ok
from relaygate.admin.payloads import KeyCreate, KeyUpdate, TopUp
from relaygate.auth.keys import key_status, new_api_key
from relaygate.services import Services
from relaygate.store.ledger_records import BudgetCounters
from relaygate.store.records import KeyRecord, KeySpec
from relaygate.web.request import Request, Send

BALANCE_VIA_TOP_UP = (
    "balance_usd: change a balance with POST /admin/keys/{name}/top-up, so that every change "
    "is recorded as a balance entry"
)


async def list_keys(services: Services, request: Request, send: Send) -> None:
    records = await services.store.list_keys()
    now = datetime.now(UTC)
    counters = await counters_by_key(services, now)
    await send_ok(send, {"keys": [key_json(r, counters.get(r.name), now) for r in records]})


async def create_key(services: Services, request: Request, send: Send) -> None:
    payload = parse_payload(KeyCreate, await read_object(request))
    material = new_api_key()
    try:
        spec = KeySpec(
            name=payload.name,
            key_hash=material.key_hash,
            key_prefix=material.key_prefix,
            owner=payload.owner,
            team=payload.team,
            allowed_models=tuple(payload.allowed_models or ()),
            priority=payload.priority or 0,
            rps=_float(payload.rps),
            burst=payload.burst,
            rpm=payload.rpm,
            tpm=payload.tpm,
            max_concurrent=payload.max_concurrent,
            monthly_budget_usd=_float(payload.monthly_budget_usd),
            balance_usd=_float(payload.balance_usd),
            expires_at=_expiry(payload.expires_at, payload.expires_days),
        )
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    record = await credit.create_key(services.store, services.accounting.store, spec)
    services.keys.invalidate()
    body = {"key": material.raw_key, **await _key_body(services, record)}
    await send_ok(send, body, 201)


async def get_key(services: Services, send: Send, name: str) -> None:
    record = await _existing(services, name)
    await send_ok(send, await _key_body(services, record))


async def update_key(services: Services, request: Request, send: Send, name: str) -> None:
    data = await read_object(request)
    if "balance_usd" in data:
        raise AdminError.bad_request(BALANCE_VIA_TOP_UP, "balance_usd")
    payload = parse_payload(KeyUpdate, data)
    changes: dict[str, object] = {
        field: getattr(payload, field)
        for field in payload.model_fields_set
        if field not in ("expires_days",)
    }
    if "expires_days" in payload.model_fields_set:
        changes["expires_at"] = _expiry(None, payload.expires_days)
    for field in ("rps", "monthly_budget_usd"):
        if field in changes:
            changes[field] = _float(changes[field])  # type: ignore[arg-type]
    for field in ("priority", "disabled", "allowed_models"):
        if field in changes and changes[field] is None:
            hint = " (use [] to allow every model)" if field == "allowed_models" else ""
            raise AdminError.bad_request(f"{field}: cannot be null{hint}", field)
    await _existing(services, name)
    try:
        record = await services.store.update_key(name, **changes)
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    if record is None:
        raise _unknown(name)
    services.keys.invalidate()
    await send_ok(send, await _key_body(services, record))


async def revoke_key(services: Services, send: Send, name: str) -> None:
    if not await services.store.revoke_key(name):
        raise _unknown(name)
    services.keys.invalidate()
    record = await _existing(services, name)
    await send_ok(send, await _key_body(services, record))


async def top_up(services: Services, request: Request, send: Send, name: str) -> None:
    payload = parse_payload(TopUp, await read_object(request))
    fx = services.accounting.fx
    try:
        currency = fx.check(payload.currency or "USD")
        amount_usd = fx.to_usd(float(payload.amount), currency)
        entry = await credit.top_up(
            services.accounting.store, name, amount_usd, kind=payload.kind, note=payload.note
        )
    except credit.UnknownKeyError as exc:
        raise AdminError.not_found(str(exc), "name") from None
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    services.keys.invalidate()
    record = await _existing(services, name)
    await send_ok(
        send,
        {
            "entry": entry_json(
                entry.id, entry.amount_usd, entry.kind, entry.note, entry.created_at
            ),
            "key": await _key_body(services, record),
        },
        201,
    )


async def show_balance(services: Services, send: Send, name: str) -> None:
    record = await _existing(services, name)
    entries = await services.accounting.store.balance_entries(name)
    await send_ok(
        send,
        {
            "key": await _key_body(services, record),
            "entries": [
                entry_json(e.id, e.amount_usd, e.kind, e.note, e.created_at) for e in entries
            ],
        },
    )


def key_json(record: KeyRecord, counters: BudgetCounters | None, now: datetime) -> dict[str, Any]:
    """A key as the admin API shows it (never its hash), with its budget counters as stored."""
    fields = {
        name: getattr(record, name) for name in record.__dataclass_fields__ if name != "key_hash"
    }
    fields["allowed_models"] = list(record.allowed_models)
    for name in ("expires_at", "created_at", "revoked_at"):
        value = fields[name]
        fields[name] = value.astimezone(UTC).isoformat() if value else None
    fields["status"] = key_status(record, now)
    month = now.strftime("%Y-%m")
    spent = counters.month_spent_usd if counters and counters.month == month else 0.0
    balance_spent = counters.balance_spent_usd if counters else 0.0
    fields["budget"] = {
        "month": month,
        "month_spent_usd": spent,
        "reserved_usd": counters.reserved_usd if counters else 0.0,
        "monthly_left_usd": (
            None
            if record.monthly_budget_usd is None
            else max(0.0, record.monthly_budget_usd - spent)
        ),
        "balance_left_usd": (
            None if record.balance_usd is None else record.balance_usd - balance_spent
        ),
    }
    return fields


async def counters_by_key(services: Services, now: datetime) -> dict[str, BudgetCounters]:
    rows = await services.accounting.store.load_budgets(now.strftime("%Y-%m"))
    return {row.key_name: row for row in rows}


async def _key_body(services: Services, record: KeyRecord) -> dict[str, Any]:
    now = datetime.now(UTC)
    counters = await counters_by_key(services, now)
    return key_json(record, counters.get(record.name), now)


def entry_json(
    entry_id: str, amount_usd: float, kind: str, note: str | None, created_at: datetime
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "amount_usd": amount_usd,
        "kind": kind,
        "note": note,
        "created_at": created_at.astimezone(UTC).isoformat(),
    }


async def _existing(services: Services, name: str) -> KeyRecord:
    record = await services.store.get_key_by_name(name)
    if record is None:
        raise _unknown(name)
    return record


def _unknown(name: str) -> AdminError:
    return AdminError.not_found(f"name: no key named '{name[:128]}'", "name")


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _expiry(expires_at: datetime | None, days: float | None) -> datetime | None:
    if days is not None:
        return datetime.now(UTC) + timedelta(days=float(days))
    return expires_at
