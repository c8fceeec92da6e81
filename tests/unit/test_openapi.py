"""``/openapi.json``: the document lists exactly the app's routes and is valid OpenAPI 3.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from openapi_spec_validator import validate

from relaygate.admin.routes import KEY_ROUTES, KEYS_PREFIX
from relaygate.admin.routes import ROUTES as ADMIN_ROUTES
from relaygate.app import RelaygateApp
from relaygate.edge.openapi import openapi_document, openapi_json
from relaygate.edge.pipeline_routes import ROUTES as PIPELINE_ROUTES
from relaygate.edge.routes import MODEL_PREFIXES, ROUTES, SESSION_METHODS
from relaygate.edge.session_routes import SESSION_PREFIX
from relaygate.services import build_services
from relaygate.settings import load_settings

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def app_routes() -> set[tuple[str, str]]:
    """Every (method, OpenAPI path) the app dispatches, read from its route tables."""
    routes = set(ROUTES) | set(ADMIN_ROUTES) | set(PIPELINE_ROUTES)
    routes |= {("GET", prefix + "{model_id}") for prefix in MODEL_PREFIXES}
    routes |= {(method, SESSION_PREFIX + "{session_id}") for method in SESSION_METHODS}
    routes |= {(method, f"{KEYS_PREFIX}{{name}}{suffix}") for method, suffix in KEY_ROUTES}
    return routes


def documented_routes() -> set[tuple[str, str]]:
    paths = openapi_document()["paths"]
    return {(m.upper(), path) for path, item in paths.items() for m in item if m in METHODS}


def test_every_route_is_documented_and_nothing_else() -> None:
    routes, documented = app_routes(), documented_routes()
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented routes the app does not serve"


def test_the_document_is_valid_openapi_3_1() -> None:
    document = orjson.loads(openapi_json())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_answers_in_json_schemas_that_resolve() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    text = orjson.dumps(document).decode()
    for name in schemas:
        assert f'"#/components/schemas/{name}"' in text, f"{name} unused"
    for ref in {part.split('"')[0] for part in text.split('"$ref":"')[1:]}:
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_served_at_openapi_json_without_a_key(tmp_path: Path) -> None:
    settings = load_settings(
        None, env={}, overrides={"home": str(tmp_path), "database_url": f"sqlite:///{tmp_path}/db"}
    )
    app = RelaygateApp(settings)
    app.services = await build_services(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get("/openapi.json")
    finally:
        await app.services.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi_document()
