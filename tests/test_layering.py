"""ARCHITECTURE.md's import table, held by parsing every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gossip_backer"
THIRD_PARTY = {"trio", "nacl", "msgpack", "sqlite3", "pycrdt", "numpy", "pathspec", "rich",
               "hypercorn", "trio_websocket", "sortedcontainers", "socket"}

# layer -> (allowed gossip_backer subpackages, forbidden third-party / stdlib modules)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "core": ({"core", "errors", "events"}, {"trio", "nacl", "msgpack", "sqlite3", "socket", "pycrdt", "numpy_io"}),
    "errors": (set(), {"trio", "nacl", "msgpack", "sqlite3"}),
    "events": ({"errors"}, {"trio", "nacl", "msgpack", "sqlite3"}),
    "wire": ({"core", "errors", "events", "wire"}, {"trio", "nacl", "sqlite3"}),
    "crypto": ({"core", "errors", "events", "wire", "crypto"}, {"trio", "sqlite3"}),
    "protocol": ({"core", "errors", "events", "wire", "crypto", "protocol"},
                 {"trio", "sqlite3", "os", "socket", "random"}),
    "store": ({"core", "errors", "events", "store", "wire"}, {"trio", "protocol"}),
    "disk": ({"core", "errors", "events", "disk"}, {"trio"}),
    "live": ({"core", "errors", "events", "live"}, {"trio"}),
    "runtime": ({"core", "errors", "events", "wire", "crypto", "protocol", "store", "disk", "live",
                 "runtime"}, set()),
    "web": ({"core", "errors", "events", "runtime", "web"}, set()),
    "cli": ({"core", "errors", "events", "runtime", "daemon"}, set()),
    "daemon": ({"core", "errors", "events", "runtime", "web"}, set()),
    "testing": ({"core", "errors", "events", "wire", "crypto", "protocol", "store", "disk", "live",
                 "runtime", "testing"}, set()),
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def _layer(path: Path) -> str | None:
    rel = path.relative_to(PKG)
    if len(rel.parts) == 1:
        return rel.stem if rel.stem in RULES else None
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path) -> None:
    layer = _layer(path)
    if layer is None:
        return
    allowed, forbidden = RULES[layer]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "gossip_backer" and len(parts) > 1:
            target = parts[1]
            assert target == layer or target in allowed, f"{path.name}: {layer} must not import {name}"
        else:
            assert parts[0] not in forbidden, f"{path.name}: {layer} must not import {name}"


def test_protocol_reads_no_clock() -> None:
    for path in (PKG / "protocol").rglob("*.py"):
        text = path.read_text()
        assert "time.time()" not in text and "time.monotonic()" not in text, path.name


def test_only_crypto_imports_nacl_and_only_store_sqlite() -> None:
    for path in _modules():
        layer = _layer(path)
        mods = {n.split(".")[0] for n in _imports(path)}
        if "nacl" in mods:
            assert layer == "crypto", path
        if "sqlite3" in mods:
            assert layer == "store", path
        if "pycrdt" in mods:
            assert layer == "live", path
