"""`relaygate mock serve` option parsing."""

from __future__ import annotations

import argparse

import pytest

from relaygate.cli.mock import add_mock_parser, mock_settings_from_args, run_mock_serve


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mock_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["mock", "serve", *argv])


def test_defaults() -> None:
    args = parse()
    assert (args.host, args.port, args.seed) == ("127.0.0.1", 9000, None)
    assert args.handler is run_mock_serve
    settings = mock_settings_from_args(args)
    assert settings.latency_ms == 0
    assert settings.fault.kind == "none"


def test_all_options() -> None:
    args = parse(
        *("--port", "9100", "--latency-ms", "50", "--jitter-ms", "5", "--first-token-ms", "30"),
        *("--stream-interval-ms", "10", "--max-concurrency", "500", "--fault", "429"),
        *("--fault-rate", "0.1", "--fault-first-n", "2", "--retry-after", "3", "--seed", "7"),
    )
    settings = mock_settings_from_args(args)
    assert (settings.latency_ms, settings.latency_jitter_ms) == (50, 5)
    assert (settings.first_token_ms, settings.stream_interval_ms) == (30, 10)
    assert settings.max_concurrency == 500
    fault = settings.fault
    assert (fault.kind, fault.rate, fault.first_n, fault.retry_after) == ("429", 0.1, 2, 3)
    assert args.seed == 7


def test_fault_alone_fails_every_request() -> None:
    assert mock_settings_from_args(parse("--fault", "hang")).fault.rate == 1.0


def test_fault_with_first_n_only_keeps_rate_zero() -> None:
    fault = mock_settings_from_args(parse("--fault", "500", "--fault-first-n", "3")).fault
    assert (fault.rate, fault.first_n) == (0.0, 3)


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--fault", "teapot")


def test_out_of_range_values_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_mock_serve(parse("--fault", "500", "--fault-rate", "1.5")) == 2
    assert "--fault-rate" in capsys.readouterr().err
    assert run_mock_serve(parse("--latency-ms", "-1")) == 2
    assert "--latency-ms" in capsys.readouterr().err
