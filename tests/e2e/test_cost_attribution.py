"""Cost attribution through the real server and the official SDKs: end users and tags reach the
ledger, reports group and filter by them (admin API and CLI), and cost is exported per model and
key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.e2e.accounting_support import write_config
from tests.e2e.server import Gateway, start_gateway, stop
from tests.e2e.test_accounting import admin, ledger_rows, wait_rows


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("attribution-home")
    gw = start_gateway(home, write_config(home))  # no shedding: a busy 429 fails an SDK call
    yield gw
    stop(gw.process)


def openai_client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=gw.api_key, max_retries=0)


def anthropic_client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key=gw.api_key, max_retries=0)


def test_end_users_and_tags_reach_the_ledger_and_the_reports(gateway: Gateway) -> None:
    before = len(ledger_rows(gateway.home))
    with openai_client(gateway) as oai, anthropic_client(gateway) as ant:
        messages = [{"role": "user", "content": "hello"}]
        oai.chat.completions.create(
            model="mock-gpt",
            messages=messages,  # type: ignore[arg-type]
            user="shopper-1",
            extra_headers={"x-relaygate-tags": "workflow=wf_1,team=cs"},
        )
        oai.chat.completions.create(
            model="mock-gpt",
            messages=messages,  # type: ignore[arg-type]
            user="shopper-1",
            extra_headers={"x-relaygate-user": "shopper-9", "x-relaygate-tags": "workflow=wf_2"},
        )
        ant.messages.create(
            model="mock-claude",
            max_tokens=50,
            messages=messages,  # type: ignore[arg-type]
            metadata={"user_id": "shopper-2"},
            extra_headers={"x-relaygate-tags": "workflow=wf_1,team=ops"},
        )
        with ant.messages.stream(
            model="mock-claude",
            max_tokens=50,
            messages=messages,  # type: ignore[arg-type]
            metadata={"user_id": "shopper-2"},
        ) as stream:
            stream.until_done()
    rows = list(wait_rows(gateway.home, before + 4).values())[before:]
    assert sorted((r["end_user"], r["tags"] or "") for r in rows) == [
        ("shopper-1", '{"team":"cs","workflow":"wf_1"}'),
        ("shopper-2", ""),
        ("shopper-2", '{"team":"ops","workflow":"wf_1"}'),
        ("shopper-9", '{"workflow":"wf_2"}'),
    ]

    by_user = admin(gateway, "GET", "/admin/usage?by=user").json()
    users = {line["group"]: line["requests"] for line in by_user["rows"]}
    assert users["shopper-1"] == 1 and users["shopper-2"] == 2 and users["shopper-9"] == 1
    by_workflow = admin(gateway, "GET", "/admin/usage?by=tag:workflow&tag=team=cs").json()
    assert [(x["group"], x["requests"]) for x in by_workflow["rows"]] == [("wf_1", 1)]
    assert by_workflow["filter"] == {"tag": "team=cs"}
    one_user = admin(gateway, "GET", "/admin/usage?by=tag:workflow&user=shopper-2").json()
    assert {x["group"]: x["requests"] for x in one_user["rows"]} == {"wf_1": 1, "(none)": 1}
    listed = admin(gateway, "GET", "/admin/usage/requests?user=shopper-2&tag=team=ops").json()
    assert [(r["end_user"], r["tags"]) for r in listed["requests"]] == [
        ("shopper-2", {"team": "ops", "workflow": "wf_1"})
    ]
    bad = admin(gateway, "GET", "/admin/usage?by=tag:")
    assert bad.status_code == 400 and "by" in bad.text
    bad = admin(gateway, "GET", "/admin/usage?tag=nokey")
    assert bad.status_code == 400 and "tag" in bad.text

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "relaygate.cli.main",
            "usage",
            "report",
            "--by",
            "tag:team",
            "--user",
            "shopper-2",
            "--json",
            "--database-url",
            f"sqlite:///{gateway.home / 'relaygate.db'}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(cli.stdout)
    assert {x["group"]: x["requests"] for x in report["rows"]} == {"ops": 1, "(none)": 1}


def test_a_bad_tags_header_is_refused_in_each_dialect_naming_it(gateway: Gateway) -> None:
    bad = {"x-relaygate-tags": "workflow"}
    with pytest.raises(openai.BadRequestError) as oai_error, openai_client(gateway) as oai:
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=bad,
        )
    assert "x-relaygate-tags" in str(oai_error.value.body)
    with pytest.raises(anthropic.BadRequestError) as ant_error, anthropic_client(gateway) as ant:
        ant.messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=bad,
        )
    assert ant_error.value.body is not None
    assert "x-relaygate-tags" in json.dumps(ant_error.value.body)


def test_cost_is_exported_per_model_and_key_name_only(gateway: Gateway) -> None:
    with openai_client(gateway) as oai:
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "price me"}],
            user="shopper-secret",
            extra_headers={"x-relaygate-tags": "workflow=wf_secret"},
        )
    text = httpx.get(f"{gateway.base_url}/metrics").text
    costs = re.findall(r"^relaygate_cost_usd_total\{(.*)\} (\S+)$", text, re.MULTILINE)
    assert costs, text
    assert any('model="mock-gpt"' in labels and float(value) > 0 for labels, value in costs)
    assert "shopper-secret" not in text and "wf_secret" not in text
