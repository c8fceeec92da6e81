"""Configuration: YAML + environment -> frozen, validated settings."""

from relaygate.settings.load import (
    ConfigError,
    config_path_from_env,
    load_settings,
    resolve_api_key,
)
from relaygate.settings.model import DeploymentSettings, ModelSettings, Settings
from relaygate.settings.pipelines import PipelineSettings

__all__ = [
    "ConfigError",
    "DeploymentSettings",
    "ModelSettings",
    "PipelineSettings",
    "Settings",
    "config_path_from_env",
    "load_settings",
    "resolve_api_key",
]
