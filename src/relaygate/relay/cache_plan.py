"""Whether and how one request uses the response cache: its headers, policy and key.

``x-relaygate-cache: use | skip | refresh`` (``refresh``: call the upstream and overwrite) and
``x-relaygate-cache-ttl: <seconds>`` are checked here; a bad value is a 400 naming the header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from relaygate.cache import GLOBAL_SCOPE, CacheKey, cache_key
from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import ChatRequest
from relaygate.settings.cache import MAX_TTL_SECONDS, CachePolicy, CacheSettings

CACHE_HEADER = "x-relaygate-cache"
TTL_HEADER = "x-relaygate-cache-ttl"
Mode = Literal["use", "skip", "refresh"]
_MODES: dict[str, Mode] = {"use": "use", "skip": "skip", "refresh": "refresh"}


@dataclass(slots=True, frozen=True)
class CachePlan:
    """A cacheable request: where its answer lives and what to do with it."""

    key: CacheKey
    mode: Literal["use", "refresh"]
    ttl_seconds: float
    coalesce: bool


def request_mode(headers: Mapping[str, str]) -> tuple[Mode, float | None]:
    """The request's cache mode and TTL from its headers; a 400 for a value that is neither."""
    given = headers.get(CACHE_HEADER)
    mode: Mode = "use"
    if given is not None:
        found = _MODES.get(given.strip().lower())
        if found is None:
            raise InvalidRequestError(
                f"{CACHE_HEADER} must be one of use, skip, refresh", param=CACHE_HEADER
            )
        mode = found
    ttl_text = headers.get(TTL_HEADER)
    if ttl_text is None:
        return mode, None
    try:
        ttl = float(ttl_text)
    except ValueError:
        ttl = math.nan
    if not 0 < ttl <= MAX_TTL_SECONDS:  # NaN fails too
        raise InvalidRequestError(
            f"{TTL_HEADER} must be a number of seconds above 0 and at most {MAX_TTL_SECONDS:.0f}",
            param=TTL_HEADER,
        )
    return mode, ttl


def deterministic(req: ChatRequest, policy: CachePolicy) -> bool:
    if req.temperature is None:
        return policy.deterministic_default
    return req.temperature == 0


class CachePlanner:
    """Turns a request into a ``CachePlan``, or ``None`` when the cache is not for it."""

    def __init__(self, settings: CacheSettings) -> None:
        self._settings = settings
        self._policies: dict[tuple[str, str | None], CachePolicy] = {}

    def plan(
        self,
        key_name: str,
        model: str,
        req: ChatRequest,
        headers: Mapping[str, str],
        plans: dict[tuple[str, str], CachePlan] | None = None,
    ) -> CachePlan | None:
        """``plans``, when given, memoizes ``req``'s plans per (model, key) for requests without
        cache headers (the common case): the same request is then planned, and its key hashed,
        once."""
        memo = plans if CACHE_HEADER not in headers and TTL_HEADER not in headers else None
        if memo is not None:
            found = memo.get((model, key_name))
            if found is not None:
                return found
        mode, ttl = request_mode(headers)
        if mode == "skip":
            return None
        policy = self.policy(model, key_name)
        if not policy.enabled or not (policy.nondeterministic or deterministic(req, policy)):
            return None
        scope = GLOBAL_SCOPE if policy.scope == "global" else key_name
        key = cache_key(req, model, scope)
        plan = CachePlan(key, mode, ttl or policy.ttl_seconds, policy.coalesce)
        if memo is not None:
            memo[(model, key_name)] = plan
        return plan

    def policy(self, model: str, key_name: str) -> CachePolicy:
        override_key = key_name if key_name in self._settings.keys else None
        found = self._policies.get((model, override_key))
        if found is None:
            found = self._settings.policy(model, override_key)
            self._policies[(model, override_key)] = found
        return found
