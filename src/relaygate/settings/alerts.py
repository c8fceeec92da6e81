"""Alert settings: the built-in rules' thresholds, windows and switches, and the webhooks.

```yaml
alerts:
  repeat_seconds: 3600              # re-send an alert still firing this often
  rules:
    latency: {threshold_ms: 100, window_seconds: 300}
    errors: {threshold: 0.01, window_seconds: 300}
    budget: {threshold: 0.8}
    breaker: {open_seconds: 60}
    degradation: {level: degraded}
    ledger_spill: {enabled: true}
  webhooks:
    - {url: "https://hooks.slack.com/services/...", format: slack}
    - {url: "https://open.feishu.cn/open-apis/bot/v2/hook/...", format: feishu}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

WebhookFormat = Literal["json", "slack", "feishu", "dingtalk", "wecom"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowRule(_Frozen):
    """A rule over the requests of the last ``window_seconds`` (only once at least
    ``min_requests`` were seen, so one slow request of an idle gateway does not page anyone)."""

    enabled: bool = True
    window_seconds: float = Field(300.0, ge=1, le=3600)
    min_requests: int = Field(20, ge=1)


class LatencyRule(WindowRule):
    """p99 of the whole request latency the gateway measured (ms)."""

    threshold_ms: float = Field(100.0, gt=0)


class ErrorRule(WindowRule):
    """Share of requests answered with a 5xx (caller mistakes and refusals are not errors)."""

    threshold: float = Field(0.01, gt=0, le=1)


class BudgetRule(_Frozen):
    """A key whose month's spend (or use of its prepaid balance) passed this share."""

    enabled: bool = True
    threshold: float = Field(0.8, gt=0, le=1)


class BreakerRule(_Frozen):
    """A deployment's breaker not closed (open or probing) for longer than ``open_seconds``."""

    enabled: bool = True
    open_seconds: float = Field(60.0, ge=0)


class DegradationRule(_Frozen):
    """A model at this degradation level or worse."""

    enabled: bool = True
    level: Literal["reduced", "degraded"] = "degraded"


class SwitchRule(_Frozen):
    enabled: bool = True


class AlertRules(_Frozen):
    latency: LatencyRule = LatencyRule()
    errors: ErrorRule = ErrorRule()
    budget: BudgetRule = BudgetRule()
    breaker: BreakerRule = BreakerRule()
    degradation: DegradationRule = DegradationRule()
    ledger_spill: SwitchRule = SwitchRule()


class WebhookSettings(_Frozen):
    url: str = Field(min_length=1)
    format: WebhookFormat = "json"
    timeout_seconds: float = Field(5.0, gt=0)
    # Attempts per notification; waits double from backoff_seconds between them.
    attempts: int = Field(4, ge=1, le=20)
    backoff_seconds: float = Field(1.0, ge=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            # Not quoted back: a webhook URL usually carries its access token.
            raise ValueError("expected an http:// or https:// URL")
        return url


class AlertSettings(_Frozen):
    enabled: bool = True
    evaluate_seconds: float = Field(5.0, gt=0)
    repeat_seconds: float = Field(3600.0, gt=0)
    # Resolved alerts kept for GET /admin/alerts.
    recent: int = Field(100, ge=0)
    # Notifications waiting for delivery; past this the newest are dropped (and counted).
    queue_size: int = Field(1000, ge=1)
    rules: AlertRules = AlertRules()
    webhooks: list[WebhookSettings] = Field(default_factory=list)
