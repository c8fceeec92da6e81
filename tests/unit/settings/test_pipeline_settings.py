from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.settings import ConfigError, load_settings

MODELS = """
models:
  - name: mock-claude
    aliases: [claude-x]
    deployments: [{provider: mock}]
"""


def write(tmp_path: Path, pipelines: str) -> Path:
    path = tmp_path / "relaygate.yaml"
    path.write_text(MODELS + "pipelines:\n" + pipelines)
    return path


def test_a_pipeline_loads_with_its_schema_file(tmp_path: Path) -> None:
    (tmp_path / "order.json").write_text('{"type": "object", "required": ["order_id"]}')
    path = write(
        tmp_path,
        """
  - name: extract-order
    model: claude-x
    prompt: "Extract: {{ content }}"
    schema_file: order.json
    params: {temperature: 0, max_tokens: 256}
    max_attempts: 3
    concurrency: 2
""",
    )
    (pipeline,) = load_settings(path, env={}).pipelines
    assert pipeline.output_schema == {"type": "object", "required": ["order_id"]}
    assert (pipeline.max_attempts, pipeline.concurrency, pipeline.timeout_seconds) == (3, 2, 120.0)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            "{name: p, model: nope, prompt: x, schema: {type: object}}",
            "pipelines[0].model: unknown model 'nope'",
        ),
        (
            "{name: p, model: mock-claude, prompt: x, schema: {type: objekt}}",
            "pipelines[0].schema: invalid JSON Schema",
        ),
        (
            "{name: p, model: mock-claude, prompt: '{{ content ', schema: {}}",
            "pipelines[0].prompt: template syntax error at line 1",
        ),
        (
            "{name: p, model: mock-claude, prompt: x, schema_file: missing.json}",
            "pipelines[0].schema_file: cannot read",
        ),
        (
            "{name: p, model: mock-claude, prompt: x, schema: {}, params: {seed: 1}}",
            "pipelines[0].params: unknown params ['seed']",
        ),
        (
            "{name: p, model: mock-claude, prompt: x, schema: {}, callback_secret_env: NOPE_X}",
            "pipelines[0].callback_secret_env: environment variable NOPE_X is not set",
        ),
        ("{name: 'a/b', model: mock-claude, prompt: x, schema: {}}", "pipelines[0].name:"),
    ],
)
def test_a_bad_pipeline_names_file_key_path_and_problem(
    tmp_path: Path, pipeline: str, message: str
) -> None:
    path = write(tmp_path, f"  - {pipeline}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_pipeline_defined_twice_is_refused(tmp_path: Path) -> None:
    one = "{name: p, model: mock-claude, prompt: x, schema: {}}"
    path = write(tmp_path, f"  - {one}\n  - {one}\n")
    with pytest.raises(ConfigError, match=r"pipelines\[1\].name: pipeline 'p' is defined twice"):
        load_settings(path, env={})
