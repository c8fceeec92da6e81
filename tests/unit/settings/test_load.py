from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relaygate.yaml"
    path.write_text(text)
    return path


def test_embedded_defaults_serve_the_mock() -> None:
    settings = load_settings(None, env={})
    names = [m.name for m in settings.models]
    assert names == ["mock-gpt", "mock-claude", "mock-fast"]
    assert all(d.provider == "mock" for m in settings.models for d in m.deployments)
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8080


def test_issue_example_shape_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: claude-sonnet-4-20250514
    deployments:
      - provider: anthropic
        base_url: https://api.anthropic.com
        api_key_env: ANTHROPIC_API_KEY
  - name: gpt-4.1
    deployments:
      - provider: openai
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY
""",
    )
    settings = load_settings(path, env={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "b"})
    assert settings.models[1].deployments[0].base_url == "https://api.openai.com/v1"


def test_error_names_file_key_path_and_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: x\n    deployments:\n      - provider: azure\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert str(path) in message
    assert "models[0].deployments[0].provider" in message
    assert "anthropic" in message


def test_missing_api_key_env_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n  - name: x\n    deployments:\n      - provider: openai\n"
        "        base_url: http://h/v1\n        api_key_env: NOPE_KEY\n",
    )
    with pytest.raises(
        ConfigError, match=r"models\[0\]\.deployments\[0\]\.api_key_env: .*NOPE_KEY"
    ):
        load_settings(path, env={})


def test_invalid_yaml_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(write(tmp_path, "models: [\n"), env={})
    with pytest.raises(ConfigError, match=r"serverr: Extra inputs"):
        load_settings(write(tmp_path, "serverr: {}\nmodels: []\n"), env={})


def test_unknown_fallback_and_duplicate_names(tmp_path: Path) -> None:
    dep = "    deployments: [{provider: mock}]\n"
    path = write(tmp_path, f"models:\n  - name: a\n    fallbacks: [b]\n{dep}")
    with pytest.raises(ConfigError, match="unknown model 'b'"):
        load_settings(path, env={})
    path = write(tmp_path, f"models:\n  - name: a\n{dep}  - name: c\n    aliases: [a]\n{dep}")
    with pytest.raises(ConfigError, match="defined twice"):
        load_settings(path, env={})


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"RELAYGATE_PORT": "9999", "RELAYGATE_DATABASE_URL": "postgresql://x/y"}
    settings = load_settings(None, env=env)
    assert settings.server.port == 9999
    assert settings.resolved_database_url == "postgresql://x/y"
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(None, env={"RELAYGATE_PORT": "not-a-port"})


def test_metrics_token_env_must_be_set_and_needs_the_requirement(tmp_path: Path) -> None:
    models = "models:\n  - name: x\n    deployments:\n      - provider: mock\n"
    required = "server:\n  metrics_token_required: true\n  metrics_token_env: SCRAPE\n"
    with pytest.raises(ConfigError, match=r"server\.metrics_token_env: .*SCRAPE is not set"):
        load_settings(write(tmp_path, required + models), env={})
    settings = load_settings(write(tmp_path, required + models), env={"SCRAPE": "t"})
    assert settings.server.metrics_token_required
    loose = "server:\n  metrics_token_env: SCRAPE\n"
    with pytest.raises(ConfigError, match="metrics_token_required is false"):
        load_settings(write(tmp_path, loose + models), env={"SCRAPE": "t"})


@pytest.mark.parametrize(
    ("deployment", "problem"),
    [
        ("base_url: ftp://h/v1", "base_url must be an http:// or https:// URL"),
        ("base_url: http:///v1", "base_url must be an http:// or https:// URL"),
        ('base_url: http://h/v1\n        headers: {"x-a": "1\\r\\nx-b: 2"}', "line break"),
    ],
)
def test_a_deployment_the_http_client_cannot_send_to_is_a_config_error(
    tmp_path: Path, deployment: str, problem: str
) -> None:
    path = write(
        tmp_path,
        f"models:\n  - name: x\n    deployments:\n      - provider: openai\n        {deployment}\n",
    )
    with pytest.raises(ConfigError, match=rf"models\[0\]\.deployments\[0\].*{problem}"):
        load_settings(path, env={})
