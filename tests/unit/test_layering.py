"""Import rules from ARCHITECTURE.md: core imports nothing of ours, dialects never import
providers, providers never import dialects, and every package declares ``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "relaygate"

FORBIDDEN = {
    "core": ("relaygate.",),
    "dialects": (
        "relaygate.providers",
        "relaygate.transport",
        "relaygate.relay",
        "relaygate.store",
    ),
    "providers": (
        "relaygate.dialects",
        "relaygate.transport",
        "relaygate.relay",
        "relaygate.store",
    ),
    "settings": ("relaygate.relay", "relaygate.dialects", "relaygate.providers"),
}


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str) -> None:
    own = f"relaygate.{package}"
    for path in (SRC / package).rglob("*.py"):
        for name in imports_of(path):
            if name.startswith(own):
                continue
            bad = [p for p in FORBIDDEN[package] if name.startswith(p)]
            assert not bad, f"{path.relative_to(SRC)} imports {name}"


def test_every_package_declares_all() -> None:
    for init in SRC.rglob("__init__.py"):
        assert "__all__" in init.read_text(), f"{init.relative_to(SRC)} has no __all__"
