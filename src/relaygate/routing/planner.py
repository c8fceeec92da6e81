"""The attempt plan: the requested model, then its fallback chain, each model tried in turn.

Fallbacks chain: if ``claude-sonnet-4`` falls back to ``claude-haiku-4`` and that one to
``deepseek-v3``, a request for ``claude-sonnet-4`` may end on ``deepseek-v3``. Models are visited
breadth first (a model's own fallbacks in their listed order before theirs), each at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar


class Chained(Protocol):
    """What the planner needs of a model route."""

    @property
    def name(self) -> str: ...

    @property
    def fallbacks(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=Chained)


def model_chain(route: R, lookup: Callable[[str], R | None]) -> Iterator[R]:
    """``route`` and then every model its fallback chain reaches, lazily, without repeats."""
    seen = {route.name}
    queue = [route]
    index = 0
    while index < len(queue):
        model = queue[index]
        index += 1
        yield model
        for name in model.fallbacks:
            fallback = lookup(name)
            if fallback is not None and fallback.name not in seen:
                seen.add(fallback.name)
                queue.append(fallback)
