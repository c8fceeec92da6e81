"""Cost attribution: the end user and the tags a request is recorded under."""

from __future__ import annotations

import pytest

from relaygate.accounting.attribution import (
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_USER_CHARS,
    parse_tag_filter,
    parse_tags,
    request_attribution,
)
from relaygate.accounting.reports import check_group_by
from relaygate.core.errors import InvalidRequestError


def test_nothing_given_means_no_attribution() -> None:
    assert request_attribution({}, None) == (None, None)


def test_the_header_user_wins_over_the_body_field() -> None:
    assert request_attribution({"x-relaygate-user": "alice"}, "bob") == ("alice", None)
    assert request_attribution({}, "bob") == ("bob", None)
    assert request_attribution({"x-relaygate-user": "  "}, None) == (None, None)


def test_tags_are_parsed_and_trimmed() -> None:
    headers = {"x-relaygate-tags": "workflow=wf_123, team=cs ,"}
    assert request_attribution(headers, None) == (None, {"workflow": "wf_123", "team": "cs"})


@pytest.mark.parametrize(
    "value",
    [
        "workflow",  # no value
        "=cs",  # no key
        "team=",  # empty value
        "te am=cs",
        'te"am=cs',  # would break out of a SQLite JSON path
        "team=c,s=",
        "team=cs,team=ops",  # repeated
        "k=" + "v" * (MAX_TAG_CHARS + 1),
        "k" * (MAX_TAG_CHARS + 1) + "=v",
        ",".join(f"k{i}=v" for i in range(MAX_TAGS + 1)),
        "team=c\x01s",
    ],
)
def test_bad_tag_headers_are_refused_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_tags(value)
    assert caught.value.status == 400
    assert "x-relaygate-tags" in caught.value.message
    assert caught.value.param == "x-relaygate-tags"


def test_the_most_tags_of_the_longest_length_are_accepted() -> None:
    value = ",".join(f"{'k' * (MAX_TAG_CHARS - 2)}{i:02d}={'v' * MAX_TAG_CHARS}" for i in range(10))
    tags = parse_tags(value)
    assert tags is not None and len(tags) == MAX_TAGS


def test_a_bad_user_header_is_refused_naming_it() -> None:
    for bad in ("u" * (MAX_USER_CHARS + 1), "bad\x00user"):
        with pytest.raises(InvalidRequestError, match="x-relaygate-user") as caught:
            request_attribution({"x-relaygate-user": bad}, None)
        assert caught.value.param == "x-relaygate-user"


def test_the_body_field_never_fails_a_request() -> None:
    # Claude Code's metadata.user_id is a JSON string of a device id, an account and a session.
    claude_code = (
        '{"device_id":"' + "a" * 64 + '","account_uuid":"","session_id":"' + "b" * 36 + '"}'
    )
    assert request_attribution({}, claude_code) == (claude_code, None)
    user, _ = request_attribution({}, "bad\x00user\n")
    assert user == "bad\ufffduser"
    user, _ = request_attribution({}, "u" * 1000)
    assert user is not None and len(user) == MAX_USER_CHARS and user.endswith("...")


def test_report_filters_and_groupings() -> None:
    assert parse_tag_filter("team=cs") == ("team", "cs")
    for bad in ("team", "a=b,c=d", ""):
        with pytest.raises(ValueError, match="tag"):
            parse_tag_filter(bad)
    assert check_group_by("user") == ("user", None)
    assert check_group_by("tag:workflow") == ("tag", "workflow")
    for bad in ("tag", "tag:", "key:x", "tag:a.b", "owner"):
        with pytest.raises(ValueError, match="by"):
            check_group_by(bad)
