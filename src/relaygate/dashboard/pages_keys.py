"""Keys: list with spend and balance; create (the key is shown once), edit, top up, revoke.

Forms are turned into the admin API's JSON bodies and answered by its handlers (admin_calls), so
validation and every store change are the admin API's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from relaygate.dashboard.admin_calls import AdminAnswer, call_admin, key_path
from relaygate.dashboard.render import redirect
from relaygate.dashboard.view import View

INT_FIELDS = ("priority", "burst", "rpm", "tpm", "max_concurrent")
FLOAT_FIELDS = ("rps", "monthly_budget_usd", "expires_days")
TEXT_FIELDS = ("owner", "team")
KEEP_WHEN_EMPTY = ("priority", "expires_days")
DONE = {
    "updated": "Key updated.",
    "topped-up": "Balance topped up.",
    "revoked": "Key revoked.",
}


class FormError(ValueError):
    """A form field that cannot become the admin API's value."""


async def keys_page(view: View, *, status: int = 200, **extra: Any) -> None:
    answer = await call_admin(view.services, "GET", "/admin/keys")
    keys = answer.body["keys"] if answer.ok else []
    fx = view.services.accounting.fx
    await view.page(
        "keys.html",
        status,
        active="keys",
        keys=keys,
        currencies=fx.currencies,
        done=DONE.get(view.text("done")),
        done_name=view.text("name"),
        load_error=answer.error,
        **extra,
    )


async def edit_page(view: View, *, error: str = "") -> None:
    name = view.text("name") or view.text("name", "form")
    answer = await call_admin(view.services, "GET", key_path(name, "/balance"))
    if not answer.ok:
        await keys_page(view, status=answer.status, error=answer.error)
        return
    await view.page(
        "key_edit.html",
        400 if error else 200,
        active="keys",
        key=answer.body["key"],
        entries=answer.body["entries"],
        currencies=view.services.accounting.fx.currencies,
        error=error,
    )


async def create_key(view: View) -> None:
    try:
        body = _fields(view.form, clear_empty=False)
        body["name"] = view.text("name", "form")
        balance = view.text("balance_usd", "form")
        if balance:
            body["balance_usd"] = _number("balance_usd", balance, float)
    except FormError as exc:
        await keys_page(view, status=400, error=str(exc))
        return
    answer = await call_admin(view.services, "POST", "/admin/keys", body=body)
    if not answer.ok:
        await keys_page(view, status=answer.status, error=answer.error)
        return
    # Shown in this answer only: it is in no URL, log or later page.
    await keys_page(view, status=201, new_key=answer.body["key"], new_name=answer.body["name"])


async def update_key(view: View) -> None:
    name = view.text("name", "form")
    try:
        body = _fields(view.form, clear_empty=True)
    except FormError as exc:
        await edit_page(view, error=str(exc))
        return
    body["disabled"] = view.form.get("disabled") == "on"
    answer = await call_admin(view.services, "PATCH", key_path(name), body=body)
    await _done(view, answer, "updated", name, edit_on_error=True)


async def top_up(view: View) -> None:
    name = view.text("name", "form")
    try:
        body: dict[str, Any] = {
            "amount": _number("amount", view.text("amount", "form"), float),
            "currency": view.text("currency", "form") or "USD",
        }
    except FormError as exc:
        await keys_page(view, status=400, error=str(exc))
        return
    if note := view.text("note", "form"):
        body["note"] = note
    if kind := view.text("kind", "form"):
        body["kind"] = kind
    answer = await call_admin(view.services, "POST", key_path(name, "/top-up"), body=body)
    await _done(view, answer, "topped-up", name)


async def revoke_key(view: View) -> None:
    name = view.text("name", "form")
    answer = await call_admin(view.services, "DELETE", key_path(name))
    await _done(view, answer, "revoked", name)


async def _done(
    view: View, answer: AdminAnswer, done: str, name: str, *, edit_on_error: bool = False
) -> None:
    if answer.ok:
        await redirect(view.send, "/dashboard/keys?" + urlencode({"done": done, "name": name}))
    elif edit_on_error and answer.status != 404:
        await edit_page(view, error=answer.error)
    else:
        await keys_page(view, status=answer.status, error=answer.error)


def _fields(form: dict[str, str], *, clear_empty: bool) -> dict[str, Any]:
    """The key fields of a form as admin JSON. An empty field is left out when creating and
    clears the limit when editing (``allowed_models`` becomes [], every model); an empty
    priority or expiry (in days from now) leaves the key's own unchanged."""
    body: dict[str, Any] = {}
    for field in (*INT_FIELDS, *FLOAT_FIELDS, *TEXT_FIELDS, "allowed_models"):
        if field not in form:
            continue
        text = form[field].strip()
        if not text:
            if clear_empty and field not in KEEP_WHEN_EMPTY:
                body[field] = [] if field == "allowed_models" else None
            continue
        if field in INT_FIELDS:
            body[field] = _number(field, text, int)
        elif field in FLOAT_FIELDS:
            body[field] = _number(field, text, float)
        elif field == "allowed_models":
            body[field] = [m.strip() for m in text.split(",") if m.strip()]
        else:
            body[field] = text
    return body


def _number(field: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise FormError(f"{field}: expected {expected}, got '{text[:40]}'") from None
