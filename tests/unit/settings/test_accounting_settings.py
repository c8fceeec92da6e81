"""Bad accounting config is refused at start with the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.settings import ConfigError, load_settings

MODELS = "models:\n  - name: m\n    deployments: [{provider: mock}]\n"


def load(tmp_path: Path, accounting: str) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(MODELS + "accounting:\n" + accounting)
    load_settings(path, env={})


def test_a_valid_accounting_section_loads(tmp_path: Path) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(
        MODELS
        + "accounting:\n  currency: CNY\n  fx: {USD: 1, CNY: 7.1, EUR: 0.92}\n"
        + "  pricing:\n    m: {input: 1, output: 2.5, cache_read: 0.1}\n"
        + "  ledger: {batch_size: 100, flush_interval_seconds: 0.2}\n"
        + "  budget: {mode: shared}\n"
    )
    settings = load_settings(path, env={})
    assert settings.accounting.currency == "CNY"
    assert settings.accounting.pricing["m"].output == 2.5
    assert settings.accounting.budget.mode == "shared"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  pricing:\n    m: {input: -1, output: 2}\n", "accounting.pricing.m.input"),
        ("  pricing:\n    m: {input: 'abc', output: 2}\n", "accounting.pricing.m.input"),
        ("  pricing:\n    m: {input: '1.5', output: 2}\n", "accounting.pricing.m.input"),
        ("  pricing:\n    m: {input: true, output: 2}\n", "accounting.pricing.m.input"),
        ("  pricing:\n    m: {input: 1, output: .nan}\n", "accounting.pricing.m.output"),
        ("  pricing:\n    m: {input: 1}\n", "accounting.pricing.m.output"),
        ("  pricing:\n    m: {input: 1, output: 1, cache_write: -0.5}\n", "cache_write"),
        ("  pricing:\n    m: {input: 1, output: 1, extra: 2}\n", "accounting.pricing.m.extra"),
        ("  currency: EUR\n", "currency: 'EUR' has no rate in fx"),
        ("  currency: dollars\n", "accounting.currency"),
        ("  fx: {USD: 1, CNY: -7}\n", "CNY: the rate must be a number above 0"),
        ("  fx: {CNY: 7.3}\n", "USD must be present with rate 1"),
        ("  fx: {USD: 1, cny: 7.3}\n", "'cny' is not a currency code"),
        ("  fx: {USD: 1, CNY: 'x'}\n", "accounting.fx.CNY"),
        ("  ledger: {batch_size: 0}\n", "accounting.ledger.batch_size"),
        ("  budget: {mode: sometimes}\n", "accounting.budget.mode"),
    ],
)
def test_bad_accounting_config_names_the_field(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, section)
    text = str(caught.value)
    assert message in text, text
    assert "relaygate.yaml" in text
