"""The attempt loop's view of deployment caps: a slot per attempt, or "at capacity".

Admission (``relaygate.admission``) implements this per request; the attempt loop only asks it
about deployments it ``governs``, so a deployment without caps costs nothing here.
"""

from __future__ import annotations

from typing import Protocol

from relaygate.core.types import Usage
from relaygate.relay.catalog import Deployment


class Slot(Protocol):
    """One attempt's place under a deployment's caps, held until the attempt (or stream) ends."""

    def release(self, usage: Usage | None) -> None:
        """Give the place back; ``usage`` (the request's, if known) settles the TPM reservation."""
        ...


class Capacity(Protocol):
    """One request's access to its deployments' caps."""

    @property
    def reserved(self) -> str | None:
        """The deployment admission already holds a slot on (tried first in its model), if any."""
        ...

    def governs(self, dep: Deployment) -> bool:
        """True when ``dep`` has caps (or an adaptive limit) that an attempt must fit in."""
        ...

    async def take(self, dep: Deployment) -> Slot | float:
        """A slot on ``dep``, or the seconds until it may have room (it is at capacity)."""
        ...

    def done(self) -> None:
        """The attempts are over: give back a reservation no attempt used (idempotent)."""
        ...
