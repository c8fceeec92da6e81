"""Which buckets a request must fit in: the key's quota, the deployment's caps, the global cap.

Bucket names are stable across processes (key id, deployment id), so every process sharing a
Redis store counts into the same buckets. The limits themselves travel with each ask: a key
updated by the admin takes effect on its next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relaygate.core.types import Usage
from relaygate.limits.limiter import BucketAsk, BucketSettle
from relaygate.settings import DeploymentSettings
from relaygate.store.records import KeyRecord

GLOBAL_CONCURRENCY = "g:conc"
CLAIMS = "conc:claims"  # a deployment's bucket of claims on its concurrency cap


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """The key's own quota for one request; a refusal here is answered at once (never queued)."""

    asks: tuple[BucketAsk, ...]
    tpm: BucketAsk | None


def key_is_limited(key: KeyRecord) -> bool:
    """True when the key has any limit of its own."""
    return (
        key.rps is not None
        or key.rpm is not None
        or key.tpm is not None
        or key.max_concurrent is not None
    )


@dataclass(frozen=True, slots=True)
class KeyBuckets:
    """A key's buckets worked out once for its current limits: per request only the TPM ask's
    cost changes. ``zero_tokens`` are the asks of a request of no tokens at all."""

    limits: tuple[float | None, ...]
    before_tpm: tuple[BucketAsk, ...]
    tpm: BucketAsk | None
    after_tpm: tuple[BucketAsk, ...]
    zero_tokens: tuple[BucketAsk, ...]

    def asks(self, tokens: int) -> KeyLimits:
        """The same asks as ``key_asks(key, tokens)``."""
        base = self.tpm
        if base is None:
            return KeyLimits(self.zero_tokens, None)
        tpm = BucketAsk(base.name, base.kind, base.capacity, base.rate, float(tokens))
        return KeyLimits((*self.before_tpm, tpm, *self.after_tpm), tpm)


def key_limits(key: KeyRecord) -> tuple[float | None, ...]:
    """What ``key_asks`` depends on besides the key's id: a change means new buckets."""
    return (key.rps, key.burst, key.rpm, key.tpm, key.max_concurrent)


def key_buckets(key: KeyRecord) -> KeyBuckets:
    zero = key_asks(key, 0)
    asks = zero.asks
    if zero.tpm is None:
        return KeyBuckets(key_limits(key), asks, None, (), asks)
    at = asks.index(zero.tpm)
    return KeyBuckets(key_limits(key), asks[:at], zero.tpm, asks[at + 1 :], asks)


class KnownKeyBuckets:
    """Each key's buckets and whether it has limits of its own, kept with the record they were
    worked out for: a request checks the record's identity instead of comparing its limits. A
    reloaded record of the same limits keeps the same buckets (the same asks objects, whose
    answers the limiter remembers); an admin's change makes new ones."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, tuple[KeyRecord, KeyBuckets, bool]] = {}

    def of(self, key: KeyRecord) -> tuple[KeyRecord, KeyBuckets, bool]:
        """``(key, its buckets, whether it is limited)``, as kept."""
        known = self._known.get(key.id)
        if known is None or known[0] is not key:
            buckets = known[1] if known is not None else None
            if buckets is None or buckets.limits != key_limits(key):
                buckets = key_buckets(key)
            known = self._known[key.id] = (key, buckets, key_is_limited(key))
        return known


def deployment_is_capped(dep: DeploymentSettings) -> bool:
    """True when the deployment has any provider-account cap."""
    return dep.rpm is not None or dep.tpm is not None or dep.max_concurrency is not None


def key_asks(key: KeyRecord, tokens: int) -> KeyLimits:
    """The key's buckets; ``tokens`` is the TPM reservation (input estimate + output reserve)."""
    prefix = f"k:{key.id}:"
    asks: list[BucketAsk] = []
    if key.rps is not None:
        burst = key.burst if key.burst is not None else max(1.0, key.rps)
        asks.append(BucketAsk.token_bucket(prefix + "rps", key.rps, burst))
    if key.rpm is not None:
        asks.append(BucketAsk.per_minute(prefix + "rpm", key.rpm))
    tpm = None
    if key.tpm is not None:
        tpm = BucketAsk.per_minute(prefix + "tpm", key.tpm, cost=tokens)
        asks.append(tpm)
    if key.max_concurrent is not None:
        asks.append(BucketAsk.concurrency(prefix + "conc", key.max_concurrent))
    return KeyLimits(tuple(asks), tpm)


def deployment_asks(
    deployment_id: str, dep: DeploymentSettings, tokens: int, behind_claims: bool = False
) -> list[BucketAsk]:
    """The deployment's provider-account caps: momentary capacity, so queueable.
    ``behind_claims``: the waiting high-priority requests' claims on the concurrency cap
    (``claims_ask``) count as held for this request."""
    prefix = f"d:{deployment_id}:"
    asks: list[BucketAsk] = []
    if dep.rpm is not None:
        asks.append(BucketAsk.per_minute(prefix + "rpm", dep.rpm, queueable=True))
    if dep.tpm is not None:
        asks.append(BucketAsk.per_minute(prefix + "tpm", dep.tpm, cost=tokens, queueable=True))
    if dep.max_concurrency is not None:
        behind = prefix + CLAIMS if behind_claims else None
        asks.append(
            BucketAsk.concurrency(prefix + "conc", dep.max_concurrency, True, behind=behind)
        )
    return asks


def claims_ask(deployment_id: str, dep: DeploymentSettings) -> BucketAsk | None:
    """A claim on the deployment's concurrency cap, held by a high-priority request while it
    waits for a slot, so that requests asking ``behind_claims`` leave the next slot to it
    (at most as many claims as slots); None when the deployment has no concurrency cap."""
    if dep.max_concurrency is None:
        return None
    return BucketAsk.concurrency(f"d:{deployment_id}:{CLAIMS}", dep.max_concurrency)


def global_ask(limit: int | None) -> tuple[BucketAsk, ...]:
    """The whole gateway's concurrency cap, if configured."""
    if limit is None:
        return ()
    return (BucketAsk.concurrency(GLOBAL_CONCURRENCY, limit, queueable=True),)


def token_reservation(estimated_input: int, max_tokens: int | None, default_reserve: int) -> int:
    """Tokens to reserve against TPM before the answer is known."""
    return max(1, estimated_input + (max_tokens if max_tokens is not None else default_reserve))


def tpm_true_ups(tpm: Sequence[BucketAsk], usage: Usage | None) -> tuple[BucketSettle, ...]:
    """Settle TPM reservations ``tpm`` with the tokens ``usage`` says were used (0 if unknown)."""
    if not tpm:
        return ()
    actual = usage.total_tokens if usage is not None else 0
    return tuple(BucketSettle.true_up(ask, actual) for ask in tpm)
