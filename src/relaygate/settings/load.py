"""YAML + environment -> validated ``Settings``; the only module that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from relaygate.settings.defaults import EMBEDDED_DEFAULTS
from relaygate.settings.model import Settings

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "RELAYGATE_HOST": ("server", "host"),
    "RELAYGATE_PORT": ("server", "port"),
    "RELAYGATE_WORKERS": ("server", "workers"),
    "RELAYGATE_UPSTREAM_CLIENT": ("server", "upstream_client"),
    "RELAYGATE_HOME": ("home",),
    "RELAYGATE_DATABASE_URL": ("database_url",),
    "RELAYGATE_REDIS_URL": ("redis_url",),
    "RELAYGATE_LOG_LEVEL": ("log_level",),
}


class ConfigError(Exception):
    """A configuration problem, phrased as ``<source>: <key path>: <problem>``."""


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (or the embedded defaults), apply env and explicit overrides, validate."""
    env = os.environ if env is None else env
    source = str(path) if path else "embedded defaults"
    raw = _read_yaml(path) if path else _deep_copy(EMBEDDED_DEFAULTS)
    for name, key_path in ENV_OVERRIDES.items():
        if env.get(name):
            _set_path(raw, key_path, env[name])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, tuple(dotted.split(".")), value)
    base_dir = path.parent if path else Path.cwd()
    _inline_schema_files(raw, source, base_dir)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from None
    _check_api_key_envs(settings, source, env)
    _check_pipelines(settings, source, env)
    return settings


CONFIG_PATH_ENV = "RELAYGATE_CONFIG"


def config_path_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """The config file named by ``RELAYGATE_CONFIG`` (set by ``serve --workers`` for its
    worker processes), or None for the embedded defaults."""
    return _path_from_env(CONFIG_PATH_ENV, env)


METRICS_DIR_ENV = "RELAYGATE_METRICS_DIR"


def metrics_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """The directory the worker processes of ``serve --workers`` share their metrics in (set by
    their parent), or None for a single process."""
    return _path_from_env(METRICS_DIR_ENV, env)


def _path_from_env(name: str, env: Mapping[str, str] | None) -> Path | None:
    value = (os.environ if env is None else env).get(name)
    return Path(value) if value else None


def resolve_api_key(api_key_env: str | None, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get(api_key_env) if api_key_env else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def _check_api_key_envs(settings: Settings, source: str, env: Mapping[str, str]) -> None:
    for i, model in enumerate(settings.models):
        for j, dep in enumerate(model.deployments):
            if dep.api_key_env and not env.get(dep.api_key_env):
                raise ConfigError(
                    f"{source}: models[{i}].deployments[{j}].api_key_env: "
                    f"environment variable {dep.api_key_env} is not set"
                )
    token_env = settings.server.metrics_token_env
    if token_env and not env.get(token_env):
        message = f"environment variable {token_env} is not set"
        raise ConfigError(f"{source}: server.metrics_token_env: {message}")


def _inline_schema_files(raw: dict[str, Any], source: str, base_dir: Path) -> None:
    """Replace each pipeline's ``schema_file`` with the schema it holds (JSON or YAML)."""
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, list):
        return
    for i, pipeline in enumerate(pipelines):
        if not isinstance(pipeline, dict) or "schema_file" not in pipeline:
            continue
        where = f"{source}: pipelines[{i}].schema_file"
        if "schema" in pipeline:
            raise ConfigError(f"{where}: give either schema or schema_file, not both")
        path = Path(str(pipeline.pop("schema_file"))).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            schema = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: {path} is not valid JSON or YAML: {exc}") from None
        if not isinstance(schema, dict):
            raise ConfigError(f"{where}: {path} must hold a JSON Schema object")
        pipeline["schema"] = schema


def _check_pipelines(settings: Settings, source: str, env: Mapping[str, str]) -> None:
    models = {n for m in settings.models for n in (m.name, *m.aliases)}
    seen: set[str] = set()
    for i, pipeline in enumerate(settings.pipelines):
        where = f"{source}: pipelines[{i}]"
        if pipeline.name in seen:
            raise ConfigError(f"{where}.name: pipeline '{pipeline.name}' is defined twice")
        seen.add(pipeline.name)
        if pipeline.model not in models:
            raise ConfigError(f"{where}.model: unknown model '{pipeline.model}'")
        secret_env = pipeline.callback_secret_env
        if secret_env and not env.get(secret_env):
            raise ConfigError(
                f"{where}.callback_secret_env: environment variable {secret_env} is not set"
            )


def _describe(source: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{source}: {loc or '(top level)'}: {message}")
    return "\n".join(problems)


def _set_path(raw: dict[str, Any], key_path: tuple[str, ...], value: Any) -> None:
    node = raw
    for key in key_path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[key_path[-1]] = value


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    copied = yaml.safe_load(yaml.safe_dump(data))
    assert isinstance(copied, dict)
    return copied
