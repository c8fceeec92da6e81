from __future__ import annotations

from pathlib import Path

from relaygate.settings import load_settings
from relaygate.settings.credentials import upstream_credentials

CONFIG = """
models:
  - name: a
    deployments:
      - provider: openai
        base_url: http://h/v1
        api_key_env: KEY_A
        headers: {Authorization: "Bearer header-token-1", x-team: visible, X-Auth-Token: tok-2}
  - name: b
    deployments:
      - provider: anthropic
        base_url: http://h
        api_key_env: KEY_B
      - provider: mock
"""


def test_every_deployment_key_and_credential_header_is_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(CONFIG)
    env = {"KEY_A": "key-a-value", "KEY_B": "key-b-value"}
    settings = load_settings(path, env=env)
    assert upstream_credentials(settings, env) == {
        "key-a-value",
        "key-b-value",
        "Bearer header-token-1",
        "header-token-1",
        "tok-2",
    }
