"""The layer order of ``src/relaygate``: every package may import only packages in lower layers.

The order is written down once, here (docs/architecture-notes.md repeats it with what lives in
each package). Packages in one layer are peers and may not import each other. Every import
counts: at module level, inside functions, and under ``TYPE_CHECKING`` (a type-only import is
still a dependency: it ties the lower package to the higher one's names). Root modules
(``services.py``, ``app.py``) count as packages of their own; ``relaygate/__init__.py`` only
holds the version and may be imported from anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "relaygate"

# Bottom to top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("extraction",),
    ("settings", "store", "web"),
    ("dialects", "providers", "limits", "auth", "cache", "sessions", "jobs"),
    ("mock", "transport"),
    ("routing",),
    ("capacity", "accounting", "observability", "recovery"),
    ("admission",),
    ("relay", "alerts"),
    ("pipelines",),
    ("services",),
    ("admin",),
    ("dashboard",),
    ("edge",),
    ("app",),
    ("cli",),
)
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def unit_of(path: Path) -> str:
    """The package (or root module) a source file belongs to."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(path: Path, root: Path = SRC) -> Iterator[tuple[int, str]]:
    """(line, package) of every relaygate import in ``path``, relative ones resolved."""
    module = [root.name, *path.relative_to(root).with_suffix("").parts]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module[: len(module) - node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # ``from relaygate import x`` imports the unit ``x`` (or the root's ``__version__``).
            names = [f"{name}.{alias.name}" for alias in node.names] if name == SRC.name else [name]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == SRC.name and len(parts) > 1 and parts[1] != "__version__":
                yield node.lineno, parts[1]


def source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def test_every_package_has_a_layer() -> None:
    units = {unit_of(p) for p in source_files()}
    missing = sorted(units - set(LAYER_OF))
    assert not missing, f"place these in LAYERS (tests/unit/test_layering.py): {missing}"
    gone = sorted(set(LAYER_OF) - units)
    assert not gone, f"LAYERS names packages that no longer exist: {gone}"


@pytest.mark.parametrize("package", sorted(LAYER_OF))
def test_imports_point_down_only(package: str) -> None:
    bad: list[str] = []
    for path in source_files():
        if unit_of(path) != package:
            continue
        for line, target in imported_units(path):
            if target == package:
                continue
            if LAYER_OF.get(target, len(LAYERS)) >= LAYER_OF[package]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports relaygate.{target}")
    assert not bad, "imports that do not point down:\n" + "\n".join(bad)


def test_the_check_sees_upward_and_type_only_imports(tmp_path: Path) -> None:
    """The walker finds imports inside functions and under TYPE_CHECKING, relative ones too."""
    root = tmp_path / "relaygate"
    (root / "core").mkdir(parents=True)
    probe = root / "core" / "probe.py"
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import types\n"
        "if TYPE_CHECKING:\n    from relaygate.relay import attempts\n"
        "def f() -> None:\n    import relaygate.services\n"
        "from ..edge import routes\n"
    )
    probe.write_text(source)
    found = {target for _, target in imported_units(probe, root)}
    assert found == {"core", "relay", "services", "edge"}


def test_every_package_declares_all() -> None:
    for init in SRC.rglob("__init__.py"):
        assert "__all__" in init.read_text(), f"{init.relative_to(SRC)} has no __all__"
