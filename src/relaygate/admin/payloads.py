"""Admin API request bodies. Numbers are strict: ``"10"`` or ``true`` is not an amount."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)

from relaygate.settings.accounting import Number as Amount

MAX_NOTE = 500


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _KeyFields(_Payload):
    owner: StrictStr | None = Field(None, max_length=200)
    team: StrictStr | None = Field(None, max_length=200)
    allowed_models: list[StrictStr] | None = None
    priority: StrictInt | None = Field(None, ge=-1000, le=1000)
    rps: Amount | None = Field(None, gt=0, allow_inf_nan=False)
    burst: StrictInt | None = Field(None, gt=0)
    rpm: StrictInt | None = Field(None, gt=0)
    tpm: StrictInt | None = Field(None, gt=0)
    max_concurrent: StrictInt | None = Field(None, gt=0)
    monthly_budget_usd: Amount | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    expires_at: datetime | None = None
    expires_days: Amount | None = Field(None, gt=0, le=36500, allow_inf_nan=False)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("must include a timezone (e.g. 2031-05-06T00:00:00Z)")
        return value

    @field_validator("allowed_models")
    @classmethod
    def _models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not m.strip() for m in value):
            raise ValueError("model names must not be empty")
        return value


class KeyCreate(_KeyFields):
    """``POST /admin/keys``. ``balance_usd`` is recorded as the key's first balance entry."""

    name: StrictStr = Field(min_length=1, max_length=128)
    balance_usd: Amount | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)


class KeyUpdate(_KeyFields):
    """``PATCH /admin/keys/{name}``: only the fields sent change; ``null`` clears a limit."""

    disabled: StrictBool | None = None


class TopUp(_Payload):
    """``POST /admin/keys/{name}/top-up``: ``amount`` in ``currency`` (USD by default)."""

    amount: Amount = Field(allow_inf_nan=False)
    currency: StrictStr | None = Field(None, max_length=8)
    note: StrictStr | None = Field(None, max_length=MAX_NOTE)
    kind: Literal["topup", "adjustment"] = "topup"
