"""Cost attribution: the end user and the tags a request's ledger row is recorded under.

The end user comes from the ``x-relaygate-user`` header, else the body's own field (OpenAI
``user``, Anthropic ``metadata.user_id``; the dialect decoders put either in ``ChatRequest.user``).
Tags come from ``x-relaygate-tags: workflow=wf_123,team=cs``. Both are bounded so a caller cannot
grow the ledger or a report without limit. Our own headers are checked strictly: a malformed one is
refused (400) rather than recorded partly. The body field is the upstream's and clients fill it
for their own reasons (Claude Code puts a JSON string there), so it never fails a request: control
characters are replaced and an over-long value is recorded cut, marked with "...".
Nothing is parsed unless the header or field is present.
"""

from __future__ import annotations

import re

from relaygate.core.errors import InvalidRequestError

USER_HEADER = "x-relaygate-user"
TAGS_HEADER = "x-relaygate-tags"
MAX_USER_CHARS = 512
MAX_TAGS = 10
MAX_TAG_CHARS = 64
# Keys are also embedded in SQLite JSON paths ($."key"): no quotes or dots can appear in one.
TAG_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
TAG_VALUE = re.compile(r"[A-Za-z0-9_.:@/+-]{1,64}")
_PRINTABLE = re.compile(r"[\x20-\x7e\u00a0-\U0010ffff]+")
_CONTROL = re.compile(r"[^\x20-\x7e\u00a0-\U0010ffff]")


def request_attribution(
    headers: dict[str, str], body_user: str | None
) -> tuple[str | None, dict[str, str] | None]:
    """(end user, tags) of a request; raises InvalidRequestError naming the bad header or field."""
    header_user = headers.get(USER_HEADER)
    if header_user is not None:
        user: str | None = check_end_user(header_user, USER_HEADER)
    elif body_user is not None:
        user = body_end_user(body_user)
    else:
        user = None
    raw_tags = headers.get(TAGS_HEADER)
    return user, (parse_tags(raw_tags, TAGS_HEADER) if raw_tags is not None else None)


def check_end_user(value: str, source: str) -> str | None:
    """``value`` trimmed (None when empty); refused when longer than MAX_USER_CHARS or holding
    control characters."""
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_USER_CHARS or not _PRINTABLE.fullmatch(text):
        raise InvalidRequestError(
            f"{source}: expected an end-user id of at most {MAX_USER_CHARS} printable characters",
            param=source,
        )
    return text


def body_end_user(value: str) -> str | None:
    """The body's end-user field as recorded: trimmed, control characters replaced, at most
    MAX_USER_CHARS (cut and marked with "...")."""
    text = value.strip()
    if not text:
        return None
    if not _PRINTABLE.fullmatch(text):
        text = _CONTROL.sub("\ufffd", text)
    if len(text) > MAX_USER_CHARS:
        text = text[: MAX_USER_CHARS - 3] + "..."
    return text


def parse_tags(value: str, source: str = TAGS_HEADER) -> dict[str, str] | None:
    """``k=v,k=v`` -> {k: v} (None when empty). At most MAX_TAGS tags; keys are letters, digits,
    ``_`` and ``-``, values also ``.:@/+``, each 1 to MAX_TAG_CHARS characters; a key may appear
    once. Raises InvalidRequestError naming ``source``."""
    tags: dict[str, str] = {}
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        key, sep, tag_value = item.partition("=")
        key, tag_value = key.strip(), tag_value.strip()
        if not sep or not TAG_KEY.fullmatch(key) or not TAG_VALUE.fullmatch(tag_value):
            raise InvalidRequestError(
                _tag_message(source, "expected key=value pairs", item), param=source
            )
        if key in tags:
            raise InvalidRequestError(_tag_message(source, "repeated key", key), param=source)
        tags[key] = tag_value
        if len(tags) > MAX_TAGS:
            raise InvalidRequestError(f"{source}: at most {MAX_TAGS} tags", param=source)
    return tags or None


def parse_tag_filter(value: str) -> tuple[str, str]:
    """One ``key=value`` (a report filter); raises ValueError."""
    try:
        tags = parse_tags(value, "tag")
    except InvalidRequestError as exc:
        raise ValueError(exc.message) from None
    if tags is None or len(tags) != 1:
        raise ValueError("tag: expected one key=value")
    return next(iter(tags.items()))


def _tag_message(source: str, problem: str, item: str) -> str:
    return (
        f"{source}: {problem} ('{item[:MAX_TAG_CHARS]}'); keys are letters, digits, _ and -, "
        f"values also . : @ / +, each 1 to {MAX_TAG_CHARS} characters"
    )
