"""The admin API in process: auth, keys CRUD with budgets and balances, reports, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.app import RelaygateApp
from relaygate.services import Services, build_services
from relaygate.settings import load_settings


@dataclass
class Admin:
    client: httpx.AsyncClient
    services: Services
    token: str
    api_key: str

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        if body is not None and not isinstance(body, bytes):
            kw["json"] = body
        elif body is not None:
            kw["content"] = body
        return await self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    overrides = {
        "home": str(tmp_path),
        "database_url": f"sqlite:///{tmp_path / 'relaygate.db'}",
        "key_cache_refresh_seconds": 0.05,
        "accounting.ledger.flush_interval_seconds": 0.05,
        "accounting.budget.sync_seconds": 0.05,
    }
    settings = load_settings(None, env={}, overrides=overrides)
    services = await build_services(settings)
    app = RelaygateApp(settings)
    app.services = services
    assert services.bootstrap is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Admin(client, services, services.bootstrap.admin_token, services.bootstrap.api_key)
    await services.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer"},
        {"authorization": "Basic abc"},
        {"authorization": "Bearer rgadmin-wrong"},
    ],
)
async def test_admin_calls_without_a_valid_token_get_401(
    admin: Admin, headers: dict[str, str]
) -> None:
    response = await admin.client.get("/admin/keys", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_api_key_cannot_reach_admin(admin: Admin) -> None:
    for headers in (
        {"authorization": f"Bearer {admin.api_key}"},
        {"x-api-key": admin.api_key},
    ):
        response = await admin.client.get("/admin/keys", headers=headers)
        assert response.status_code == 401, headers
    response = await admin.client.post(
        "/admin/keys", headers={"authorization": f"Bearer {admin.api_key}"}, json={"name": "x"}
    )
    assert response.status_code == 401


async def test_the_admin_token_is_not_an_api_key(admin: Admin) -> None:
    response = await admin.client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {admin.token}"},
        json={"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 401


async def test_create_list_show_update_revoke(admin: Admin) -> None:
    created = await admin.call(
        "POST",
        "/admin/keys",
        {
            "name": "support",
            "owner": "alice",
            "team": "cs",
            "allowed_models": ["mock-fast"],
            "priority": 5,
            "monthly_budget_usd": 25,
            "balance_usd": 10.5,
            "expires_days": 30,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("rg-") and len(body["key"]) == 43
    assert body["balance_usd"] == 10.5 and body["monthly_budget_usd"] == 25.0
    assert body["budget"]["balance_left_usd"] == 10.5
    assert "key_hash" not in body

    listing = (await admin.call("GET", "/admin/keys")).json()["keys"]
    assert {k["name"] for k in listing} == {"default", "support"}
    assert all("key" not in k and "key_hash" not in k for k in listing)

    shown = await admin.call("GET", "/admin/keys/support")
    assert shown.json()["status"] == "active" and shown.json()["owner"] == "alice"

    patched = await admin.call(
        "PATCH", "/admin/keys/support", {"monthly_budget_usd": None, "priority": 9}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["monthly_budget_usd"] is None and patched.json()["priority"] == 9

    revoked = await admin.call("DELETE", "/admin/keys/support")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    duplicate = await admin.call("POST", "/admin/keys", {"name": "support"})
    assert duplicate.status_code == 409 and error_of(duplicate)["param"] == "name"


async def test_balance_top_ups_are_recorded_entries(admin: Admin) -> None:
    await admin.call("POST", "/admin/keys", {"name": "prepaid", "balance_usd": 5})
    topped = await admin.call(
        "POST", "/admin/keys/prepaid/top-up", {"amount": 73, "currency": "CNY", "note": "inv-1"}
    )
    assert topped.status_code == 201, topped.text
    assert topped.json()["entry"]["amount_usd"] == pytest.approx(10.0)
    assert topped.json()["key"]["balance_usd"] == pytest.approx(15.0)
    adjusted = await admin.call(
        "POST", "/admin/keys/prepaid/top-up", {"amount": -1, "kind": "adjustment"}
    )
    assert adjusted.status_code == 201
    entries = (await admin.call("GET", "/admin/keys/prepaid/balance")).json()["entries"]
    assert [(e["kind"], e["amount_usd"]) for e in entries] == [
        ("initial", 5.0),
        ("topup", pytest.approx(10.0)),
        ("adjustment", -1.0),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "/admin/keys", b"{not json", 400, "body"),
        ("POST", "/admin/keys", b"[1, 2]", 400, "body"),
        ("POST", "/admin/keys", b"", 400, "body"),
        ("POST", "/admin/keys", {"owner": "x"}, 400, "name"),
        ("POST", "/admin/keys", {"name": "x", "monthly_budget_usd": -5}, 400, "monthly_budget_usd"),
        (
            "POST",
            "/admin/keys",
            {"name": "x", "monthly_budget_usd": "10"},
            400,
            "monthly_budget_usd",
        ),
        ("POST", "/admin/keys", {"name": "x", "balance_usd": True}, 400, "balance_usd"),
        ("POST", "/admin/keys", {"name": "x", "colour": "red"}, 400, "colour"),
        (
            "POST",
            "/admin/keys",
            {"name": "x", "expires_at": "2031-01-01T00:00:00"},
            400,
            "expires_at",
        ),
        (
            "POST",
            "/admin/keys",
            {"name": "x", "allowed_models": "mock-fast"},
            400,
            "allowed_models",
        ),
        ("POST", "/admin/keys", {"name": " x"}, 400, "name"),
        ("PATCH", "/admin/keys/nobody", {"monthly_budget_usd": 5}, 404, "name"),
        ("PATCH", "/admin/keys/default", {"balance_usd": 5}, 400, "balance_usd"),
        ("PATCH", "/admin/keys/default", {"priority": None}, 400, "priority"),
        ("PATCH", "/admin/keys/default", {"rps": 0}, 400, "rps"),
        ("POST", "/admin/keys/default/top-up", {"amount": -3}, 400, "amount"),
        ("POST", "/admin/keys/default/top-up", {"amount": 0}, 400, "amount"),
        ("POST", "/admin/keys/default/top-up", {"amount": "3"}, 400, "amount"),
        ("POST", "/admin/keys/default/top-up", {"amount": 3, "currency": "EUR"}, 400, "currency"),
        ("POST", "/admin/keys/nobody/top-up", {"amount": 3}, 404, "name"),
        ("GET", "/admin/keys/nobody", None, 404, "name"),
        ("DELETE", "/admin/keys/nobody", None, 404, "name"),
        ("GET", "/admin/usage?by=week", None, 400, "by"),
        ("GET", "/admin/usage?since=yesterday", None, 400, "since"),
        ("GET", "/admin/usage?currency=EUR", None, 400, "currency"),
        ("GET", "/admin/usage?colour=red", None, 400, "colour"),
        ("GET", "/admin/bill?month=2031-13", None, 400, "month"),
        ("GET", "/admin/usage/requests?limit=0", None, 400, "limit"),
        ("GET", "/admin/usage/requests?offset=-1", None, 400, "offset"),
        ("GET", "/admin/usage/requests?status=ok", None, 400, "status"),
    ],
)
async def test_bad_input_is_a_clear_error_naming_the_field(
    admin: Admin, method: str, path: str, body: Any, status: int, param: str
) -> None:
    response = await admin.call(method, path, body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["param"] == param, error
    assert param in error["message"] or param == "body", error


async def test_unknown_admin_routes_and_methods(admin: Admin) -> None:
    assert (await admin.call("GET", "/admin/nothing")).status_code == 404
    assert (await admin.call("PUT", "/admin/keys/default")).status_code == 405


async def test_usage_bill_and_requests_after_traffic(admin: Admin) -> None:
    for model in ("mock-fast", "mock-claude"):
        response = await admin.client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {admin.api_key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        )
        assert response.status_code == 200, response.text
    async with asyncio.timeout(5):
        while (await admin.services.accounting.store.count_rows()) < 2:
            await asyncio.sleep(0.02)

    by_model = (await admin.call("GET", "/admin/usage?by=model")).json()
    assert {r["group"] for r in by_model["rows"]} == {"mock-fast", "mock-claude"}
    assert by_model["total"]["requests"] == 2 and by_model["total"]["cost"] > 0
    cny = (await admin.call("GET", "/admin/usage?by=key&currency=CNY")).json()
    assert cny["currency"] == "CNY"
    assert cny["total"]["cost"] == pytest.approx(by_model["total"]["cost"] * 7.3)

    bill = (await admin.call("GET", "/admin/bill?currency=cny")).json()
    [line] = [k for k in bill["keys"] if k["key"] == "default"]
    assert line["requests"] == 2 and line["projected"] >= line["month_to_date"] > 0

    rows = (await admin.call("GET", "/admin/usage/requests?limit=5")).json()["requests"]
    assert len(rows) == 2 and {r["key_name"] for r in rows} == {"default"}
    page = await admin.call("GET", "/admin/usage/requests?limit=1&offset=1&status=200")
    assert [r["id"] for r in page.json()["requests"]] == [rows[1]["id"]]
    fast = await admin.call("GET", "/admin/usage/requests?model=mock-fast")
    assert [r["model_used"] for r in fast.json()["requests"]] == ["mock-fast"]
    pricing = (await admin.call("GET", "/admin/pricing?currency=CNY")).json()
    assert pricing["models"]["mock"]["input"] == pytest.approx(7.3)
    ledger = (await admin.call("GET", "/admin/ledger")).json()
    assert ledger["written"] >= 2 and ledger["healthy"] is True


async def test_a_budget_set_through_admin_bites_on_the_next_request(admin: Admin) -> None:
    created = await admin.call(
        "POST", "/admin/keys", {"name": "tiny", "monthly_budget_usd": 0.000001}
    )
    raw_key = created.json()["key"]
    async with asyncio.timeout(5):
        while admin.services.keys.version is None or len(admin.services.keys) < 2:
            await asyncio.sleep(0.02)
    response = await admin.client.post(
        "/v1/messages",
        headers={"x-api-key": raw_key, "anthropic-version": "2023-06-01"},
        json={
            "model": "mock-fast",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert "Budget exhausted for key 'tiny'" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
