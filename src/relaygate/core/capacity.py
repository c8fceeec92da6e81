"""The attempt loop's view of deployment caps: a slot per attempt, or "at capacity".

Deployment capacity (``relaygate.capacity``) implements this per request; the attempt loop only
asks it about deployments it ``governs``, so a deployment without caps costs nothing here. The
protocol is generic over the deployment type so that the request context, down here in ``core``,
can carry it without knowing the catalog (``relaygate.routing.catalog.Deployment``).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from relaygate.core.types import Usage

DeploymentT = TypeVar("DeploymentT", contravariant=True)


class Slot(Protocol):
    """One attempt's place under a deployment's caps, held until the attempt (or stream) ends."""

    def release(self, usage: Usage | None) -> None:
        """Give the place back; ``usage`` (the request's, if known) settles the TPM reservation."""
        ...


class Capacity(Protocol[DeploymentT]):
    """One request's access to its deployments' caps."""

    @property
    def reserved(self) -> str | None:
        """The deployment admission already holds a slot on (tried first in its model), if any."""
        ...

    def governs(self, dep: DeploymentT) -> bool:
        """True when ``dep`` has caps (or an adaptive limit) that an attempt must fit in."""
        ...

    async def take(self, dep: DeploymentT) -> Slot | float:
        """A slot on ``dep``, or the seconds until it may have room (it is at capacity)."""
        ...

    def done(self) -> None:
        """The attempts are over: give back a reservation no attempt used (idempotent)."""
        ...
