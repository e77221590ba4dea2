"""ARCHITECTURE.md's import table as an allow-list per layer, held by parsing every module's
imports with `ast`: absolute (`import x.y`, `from x import y`, `from gossip_backer import runtime`),
relative (`from ..runtime import node`, resolved against the module's package) and dynamic ones
(`importlib.import_module("trio")`, `__import__("trio")`; a name that is not a string constant
cannot be checked and is refused).

For each layer: the gossip_backer layers it may import (anything else of ours fails), the third-party
distributions it may import (anything else that is not in the standard library fails), and the
standard-library modules it must not import (I/O where the table forbids it)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gossip_backer"
L0 = {"core", "errors", "events"}
L1 = L0 | {"wire", "crypto"}
L2 = L1 | {"protocol", "store", "disk", "live"}
L3 = L2 | {"runtime"}
NO_IO = {"socket", "sqlite3", "ssl", "select", "selectors", "subprocess", "asyncio", "shutil",
         "tempfile", "threading", "multiprocessing"}


class Rule:
    def __init__(self, ours: set[str], third_party: set[str] = frozenset(),
                 no_stdlib: set[str] = frozenset()) -> None:
        self.ours, self.third_party, self.no_stdlib = set(ours), set(third_party), set(no_stdlib)


# layer -> what it may import (ARCHITECTURE.md "Layers"); "__init__" is the package's public
# surface (`from gossip_backer import Node`), which imports the runtime.
RULES: dict[str, Rule] = {
    "errors": Rule(set(), no_stdlib=NO_IO | {"os"}),
    "events": Rule({"errors"}, no_stdlib=NO_IO | {"os"}),
    "core": Rule(L0, {"sortedcontainers", "numpy", "blake3"}, NO_IO | {"os"}),
    "wire": Rule(L0 | {"wire"}, {"msgpack"}, NO_IO | {"os"}),
    "crypto": Rule(L0 | {"wire", "crypto"}, {"nacl"}, NO_IO - {"threading"}),
    "protocol": Rule(L1 | {"protocol"}, {"sortedcontainers"},
                     NO_IO | {"os", "random", "pathlib", "io"}),
    "store": Rule(L0 | {"store", "wire"}, set(), NO_IO - {"sqlite3", "threading"}),
    "disk": Rule(L0 | {"disk"}, {"pathspec", "numpy", "blake3", "watchfiles", "anyio",
                                   "inotify_simple"},
                 NO_IO - {"shutil", "tempfile", "threading"}),
    "live": Rule(L0 | {"live"}, {"pycrdt"}, NO_IO),
    "runtime": Rule(L3, {"trio", "sortedcontainers", "numpy", "blake3", "rich", "trio_websocket"}),
    "web": Rule(L0 | {"runtime", "web", "__init__"}, {"trio", "hypercorn", "trio_websocket", "starlette",
                                                     "h11", "wsproto"}),
    "cli": Rule(L0 | {"runtime", "daemon", "__init__"}, {"trio", "rich"}),
    "daemon": Rule(L0 | {"runtime", "web", "__init__"}, {"trio"}),
    "__init__": Rule(L0 | {"runtime"}),
    "__main__": Rule({"cli"}),
    "testing": Rule(L3 | {"testing"}, {"sortedcontainers", "trio"}),
}

STDLIB = set(sys.stdlib_module_names) | {"__future__"}
OURS = {p.stem if p.suffix == ".py" else p.name for p in PKG.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _resolve(name: str, level: int, package: str) -> str:
    if not level:
        return name
    base = package.split(".")
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` (the text of `module`) imports, as absolute dotted names;
    '<dynamic>' for an import whose name is not a string constant."""
    package = _package(module, is_package)
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, package)
            if base == "gossip_backer":  # `from gossip_backer import runtime`: the names count
                names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
            else:
                names.add(base)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                level = len(arg.value) - len(arg.value.lstrip("."))
                names.add(_resolve(arg.value.lstrip("."), level, package))
            else:
                names.add("<dynamic>")
    return names


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return (isinstance(func, ast.Attribute) and func.attr == "import_module"
            and isinstance(func.value, ast.Name) and func.value.id == "importlib")


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def violations(module: str, names: set[str]) -> list[str]:
    """What `module` must not import, among `names` (see RULES)."""
    layer = layer_of(module)
    rule = RULES[layer]
    bad = []
    for name in sorted(names):
        parts = name.split(".")
        if name == "<dynamic>":
            bad.append("an import whose name is not a constant")
        elif parts[0] == "gossip_backer":
            target = parts[1] if len(parts) > 1 and parts[1] in OURS else "__init__"
            if target != layer and target not in rule.ours:
                bad.append(f"{layer} must not import {name}")
        elif parts[0] in STDLIB:
            if parts[0] in rule.no_stdlib:
                bad.append(f"{layer} must not import {name}")
        elif parts[0] not in rule.third_party:
            bad.append(f"{layer} must not import {name} (not in its allow-list)")
    return bad


def _modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_layer_has_a_rule() -> None:
    assert {layer_of(module_name(p)) for p in _modules()} <= set(RULES)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path) -> None:
    module = module_name(path)
    names = imports_of(path.read_text(), module, is_package=path.name == "__init__.py")
    assert not violations(module, names), f"{path.relative_to(PKG)}: {violations(module, names)}"


# -- the checker itself, on small sources ----------------------------------------------------
def _check(module: str, source: str, *, is_package: bool = False) -> list[str]:
    return violations(module, imports_of(source, module, is_package=is_package))


def test_from_package_import_module_is_caught() -> None:
    assert _check("gossip_backer.core.vv", "from gossip_backer import runtime\n") == [
        "core must not import gossip_backer.runtime"]
    assert _check("gossip_backer.core.vv", "from gossip_backer import Node\n")  # the surface
    assert not _check("gossip_backer.core.vv", "from gossip_backer import errors\n")


def test_relative_imports_are_resolved_and_caught() -> None:
    assert _check("gossip_backer.protocol.peer", "from ..runtime import node\n") == [
        "protocol must not import gossip_backer.runtime"]
    assert _check("gossip_backer.protocol", "from ..runtime import node\n", is_package=True)
    assert _check("gossip_backer.protocol.peer", "from .. import store\n")
    assert not _check("gossip_backer.protocol.peer", "from . import gossip\nfrom ..core import vv\n")
    assert not _check("gossip_backer.protocol", "from .gossip import x\n", is_package=True)


def test_dynamic_imports_are_caught() -> None:
    assert _check("gossip_backer.protocol.peer", 'import importlib\nimportlib.import_module("trio")\n') \
        == ["protocol must not import trio (not in its allow-list)"]
    assert _check("gossip_backer.protocol.peer", '__import__("socket")\n')
    assert _check("gossip_backer.protocol.peer",
                  'from importlib import import_module\nimport_module("..runtime", __package__)\n')
    assert _check("gossip_backer.core.vv", "import importlib\nimportlib.import_module(name)\n") == [
        "an import whose name is not a constant"]


def test_allow_list_refuses_what_is_not_listed() -> None:
    assert _check("gossip_backer.core.vv", "import requests\n")  # unknown third party
    assert _check("gossip_backer.protocol.peer", "import os.path\n")
    assert _check("gossip_backer.protocol.peer", "import random\n")
    assert _check("gossip_backer.wire.codec", "import nacl.secret\n")
    assert _check("gossip_backer.disk.scan", "from gossip_backer.protocol import mirror\n")
    assert not _check("gossip_backer.runtime.node", "import trio\nfrom gossip_backer.protocol import x\n")
    assert not _check("gossip_backer.core.vv", "import dataclasses\nfrom collections import abc\n")


def test_protocol_reads_no_clock() -> None:
    for path in (PKG / "protocol").rglob("*.py"):
        text = path.read_text()
        assert "time.time()" not in text and "time.monotonic()" not in text, path.name


def test_only_crypto_imports_nacl_and_only_store_sqlite() -> None:
    for path in _modules():
        module = module_name(path)
        layer = layer_of(module)
        mods = {n.split(".")[0] for n in imports_of(path.read_text(), module,
                                                   is_package=path.name == "__init__.py")}
        if "nacl" in mods:
            assert layer == "crypto", path
        if "sqlite3" in mods:
            assert layer == "store", path
        if "pycrdt" in mods:
            assert layer == "live", path
