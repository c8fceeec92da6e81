from __future__ import annotations

from dataclasses import dataclass

from relaygate.routing.planner import model_chain


@dataclass(frozen=True)
class Route:
    name: str
    fallbacks: tuple[str, ...] = ()


def names(start: str, table: dict[str, Route]) -> list[str]:
    return [r.name for r in model_chain(table[start], table.get)]


def test_no_fallbacks_is_just_the_model() -> None:
    assert names("a", {"a": Route("a")}) == ["a"]


def test_chain_is_followed_transitively() -> None:
    table = {
        "claude-sonnet-4": Route("claude-sonnet-4", ("claude-haiku-4",)),
        "claude-haiku-4": Route("claude-haiku-4", ("deepseek-v3",)),
        "deepseek-v3": Route("deepseek-v3"),
    }
    assert names("claude-sonnet-4", table) == ["claude-sonnet-4", "claude-haiku-4", "deepseek-v3"]
    assert names("claude-haiku-4", table) == ["claude-haiku-4", "deepseek-v3"]


def test_breadth_first_without_repeats_or_cycles() -> None:
    table = {
        "a": Route("a", ("b", "c")),
        "b": Route("b", ("d", "a")),
        "c": Route("c", ("b", "d")),
        "d": Route("d", ("a",)),
    }
    assert names("a", table) == ["a", "b", "c", "d"]


def test_aliases_resolve_to_one_model_and_unknown_names_are_skipped() -> None:
    b = Route("b")
    table = {"a": Route("a", ("b-alias", "b", "missing")), "b": b, "b-alias": b}
    assert names("a", table) == ["a", "b"]


def test_chain_is_lazy() -> None:
    asked: list[str] = []
    table = {"a": Route("a", ("b",)), "b": Route("b")}

    def lookup(name: str) -> Route | None:
        asked.append(name)
        return table.get(name)

    chain = model_chain(table["a"], lookup)
    assert next(chain).name == "a"
    assert asked == []
