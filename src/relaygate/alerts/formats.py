"""Webhook bodies per format: generic JSON, Slack, Feishu/Lark, DingTalk and WeCom.

Slack incoming webhooks take ``{"text": ...}``; Feishu/Lark custom bots
``{"msg_type": "text", "content": {"text": ...}}``; DingTalk custom robots and WeCom group robots
``{"msgtype": "text", "text": {"content": ...}}``. The chat formats get one line of text; the
generic format gets every field.
"""

from __future__ import annotations

from typing import Any

from relaygate.alerts.engine import Notification
from relaygate.settings.alerts import WebhookFormat

# WeCom refuses text over 2048 bytes; the others allow more, but an alert is one short line.
MAX_TEXT_BYTES = 2000


def alert_text(n: Notification) -> str:
    f = n.finding
    subject = f" [{f.subject}]" if f.subject else ""
    if n.status == "resolved":
        head = "RESOLVED"
        tail = f" (firing since {n.started_at:%Y-%m-%d %H:%M:%S} UTC)"
    else:
        head = f"FIRING{' (still)' if n.repeat else ''} {f.severity}"
        tail = ""
    text = f"[relaygate] {head}: {f.rule}{subject}: {f.summary}{tail}"
    encoded = text.encode()
    if len(encoded) > MAX_TEXT_BYTES:
        text = encoded[:MAX_TEXT_BYTES].decode(errors="ignore") + "..."
    return text


def webhook_body(fmt: WebhookFormat, n: Notification) -> dict[str, Any]:
    if fmt == "json":
        return {"source": "relaygate", "text": alert_text(n), **n.to_json()}
    text = alert_text(n)
    if fmt == "slack":
        return {"text": text}
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    return {"msgtype": "text", "text": {"content": text}}  # dingtalk, wecom


def refused_in_body(fmt: WebhookFormat, body: object) -> str | None:
    """The error a chat service reports with a 200 (Feishu ``code``, DingTalk and WeCom
    ``errcode``), or None when the body says nothing is wrong."""
    if fmt in ("json", "slack") or not isinstance(body, dict):
        return None
    code = body.get("errcode", body.get("code", body.get("StatusCode", 0)))
    if code in (0, None):
        return None
    return f"code {code}: {body.get('errmsg') or body.get('msg') or ''}".strip()
