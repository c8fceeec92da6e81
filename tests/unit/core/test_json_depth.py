"""may_nest_too_deep: the bracket count that lets the decoders skip check_depth."""

from __future__ import annotations

import random

import orjson

from relaygate.core.json_depth import MAX_DEPTH, may_nest_too_deep, nests_too_deep


def test_a_text_that_nests_too_deep_always_may() -> None:
    rng = random.Random(7)
    for _ in range(300):
        opened, closed = [], []
        for level in range(rng.randrange(1, MAX_DEPTH + 20)):
            decoy = '"' + "[{" * (level % 3) + '"'  # brackets in strings count, harmlessly
            if rng.random() < 0.5:
                opened.append(f"[{decoy},")
                closed.append("]")
            else:
                opened.append(f'{{"s":{decoy},"k":')
                closed.append("}")
        text = ("".join(opened) + "0" + "".join(reversed(closed))).encode()
        assert may_nest_too_deep(text) or not nests_too_deep(orjson.loads(text))


def test_few_brackets_may_not_and_many_may() -> None:
    assert not may_nest_too_deep(b'{"model": "m", "messages": [{"role": "user"}]}')
    assert not may_nest_too_deep(b"[" * MAX_DEPTH)
    assert may_nest_too_deep(b"[" * (MAX_DEPTH + 1))
    assert may_nest_too_deep(b'{"s": "' + b"{" * MAX_DEPTH + b'"}')  # strings' count too
