"""The model catalog: model names and aliases -> the deployments that serve them.

Built once from settings at start-up. Each deployment gets its provider adapter, its upstream
target (URL, upstream model name, key) and the transport that reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relaygate.core.errors import ModelNotFoundError
from relaygate.core.types import DialectName
from relaygate.mock.app import create_mock_app
from relaygate.providers.base import Provider, UpstreamTarget
from relaygate.providers.registry import provider_for_wire
from relaygate.routing.policy import DEFAULT_POLICY, RoutePolicy
from relaygate.settings import DeploymentSettings, ModelSettings, Settings, resolve_api_key
from relaygate.settings.model import MockSettings
from relaygate.transport.base import Timeouts, Transport
from relaygate.transport.inprocess import InProcessTransport

IN_PROCESS_MOCK_URL = "http://mock.relaygate.internal"


@dataclass(slots=True, frozen=True)
class Deployment:
    id: str
    model_name: str
    provider: Provider
    target: UpstreamTarget
    transport: Transport
    timeouts: Timeouts
    weight: float
    settings: DeploymentSettings

    @property
    def wire(self) -> DialectName:
        return self.provider.dialect


@dataclass(slots=True, frozen=True)
class ModelRoute:
    name: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...]
    policy: RoutePolicy = DEFAULT_POLICY


class Catalog:
    """Resolves requested model names; knows every route and the owned transports."""

    def __init__(self, routes: Mapping[str, ModelRoute], transports: list[Transport]) -> None:
        self._routes = dict(routes)
        self._names = sorted({route.name for route in routes.values()})
        self.transports = transports

    @property
    def model_names(self) -> list[str]:
        return self._names

    def get(self, name: str) -> ModelRoute | None:
        return self._routes.get(name)

    def resolve(self, name: str, allowed: tuple[str, ...] = ()) -> ModelRoute:
        route = self._routes.get(name)
        if route is None:
            visible = [n for n in self._names if not allowed or n in allowed]
            raise ModelNotFoundError(name, visible)
        return route

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()


def build_catalog(settings: Settings, http: Transport) -> Catalog:
    routes: dict[str, ModelRoute] = {}
    transports: list[Transport] = [http]
    for model in settings.models:
        deployments = []
        for index, dep in enumerate(model.deployments):
            deployment, own_transport = _build_deployment(model, index, dep, http)
            deployments.append(deployment)
            if own_transport is not None:
                transports.append(own_transport)
        policy = RoutePolicy.from_settings(model.routing)
        route = ModelRoute(model.name, tuple(deployments), tuple(model.fallbacks), policy)
        for name in (model.name, *model.aliases):
            routes[name] = route
    return Catalog(routes, transports)


def _build_deployment(
    model: ModelSettings, index: int, dep: DeploymentSettings, http: Transport
) -> tuple[Deployment, Transport | None]:
    own_transport: Transport | None = None
    if dep.provider == "mock":
        mock = dep.mock or _default_mock()
        wire: DialectName = mock.dialect
        if dep.base_url:
            base_url, transport = dep.base_url, http
        else:
            own_transport = InProcessTransport(create_mock_app(mock))
            base_url, transport = _mock_base_url(wire), own_transport
    else:
        wire = dep.provider
        base_url, transport = dep.base_url or "", http
    target = UpstreamTarget(
        base_url=base_url,
        model=dep.model or model.name,
        api_key=resolve_api_key(dep.api_key_env),
        headers=dict(dep.headers),
        default_max_tokens=model.default_max_tokens,
        flatten_content=dep.flatten_content,
    )
    timeouts = Timeouts(
        dep.timeouts.connect, dep.timeouts.first_byte, dep.timeouts.total, dep.timeouts.idle
    )
    deployment = Deployment(
        id=dep.name or f"{model.name}#{index}",
        model_name=model.name,
        provider=provider_for_wire(wire),
        target=target,
        transport=transport,
        timeouts=timeouts,
        weight=dep.weight,
        settings=dep,
    )
    return deployment, own_transport


def _mock_base_url(wire: DialectName) -> str:
    return f"{IN_PROCESS_MOCK_URL}/v1" if wire == "openai" else IN_PROCESS_MOCK_URL


def _default_mock() -> MockSettings:
    return MockSettings()
