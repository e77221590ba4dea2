"""The benchmark's datasets, generated from a seed (same bytes on every run), and the changes made
to them. Every dataset lives in one folder, `data/`, that is copied into a tool's root.

Full sizes (the issue's): `small` 2,000 files of 1-256 KiB (in 20 folders), `tiny` 10,000 files of
1-4 KiB in 100 folders, `large` one 512 MiB file. `--quick` shrinks them (same shapes)."""

from __future__ import annotations

import difflib
import gzip
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
DATA = "data"  # the folder every dataset sits in, inside a root
LARGE_NAME = "large.bin"
RENAMED_NAME = "large-renamed.bin"


@dataclass(frozen=True)
class Sizes:
    small_files: int = 2000
    small_dirs: int = 20
    small_min: int = 1 * KiB
    small_max: int = 256 * KiB
    tiny_files: int = 10_000
    tiny_dirs: int = 100
    tiny_min: int = 1 * KiB
    tiny_max: int = 4 * KiB
    large_bytes: int = 512 * MiB
    inplace_bytes: int = 1 * MiB  # overwritten in the middle of the large file
    insert_bytes: int = 100
    latency_file_bytes: int = 4 * KiB
    latency_reps: int = 10
    text_files: int = 300  # the `text` tree: source files of 10-100 KiB (edit_text)
    text_dirs: int = 10
    text_min: int = 10 * KiB
    text_max: int = 100 * KiB
    text_rounds: int = 100

    @property
    def inplace_offset(self) -> int:
        return (self.large_bytes // 2) // MiB * MiB

    @property
    def insert_offset(self) -> int:
        """100 MiB into the 512 MiB file (the same fraction of a smaller one)."""
        return self.large_bytes * 100 // 512


FULL = Sizes()
QUICK = Sizes(small_files=200, small_dirs=4, tiny_files=1000, tiny_dirs=10,
              large_bytes=32 * MiB, latency_reps=2, text_files=30, text_dirs=3, text_rounds=5)


def _rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _write_files(folder: Path, count: int, dirs: int, lo: int, hi: int, seed: int) -> None:
    rng = random.Random(seed)
    for d in range(dirs):
        (folder / f"d{d:03d}").mkdir(parents=True)
    for i in range(count):
        size = rng.randint(lo, hi)
        (folder / f"d{i % dirs:03d}" / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))


def make_small(base: Path, s: Sizes, seed: int = 1) -> Path:
    out = base / "small" / DATA
    _write_files(out, s.small_files, s.small_dirs, s.small_min, s.small_max, seed)
    return out.parent


def make_tiny(base: Path, s: Sizes, seed: int = 2) -> Path:
    out = base / "tiny" / DATA
    _write_files(out, s.tiny_files, s.tiny_dirs, s.tiny_min, s.tiny_max, seed)
    return out.parent


def make_large(base: Path, s: Sizes, seed: int = 3) -> Path:
    out = base / "large" / DATA
    out.mkdir(parents=True)
    rng = random.Random(seed)
    with open(out / LARGE_NAME, "wb") as f:
        left = s.large_bytes
        while left:
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
            left -= n
    return out.parent


# -- real-looking source text (edit_text) ---------------------------------------------------------
_SYLLABLES = ("get", "set", "read", "write", "node", "peer", "block", "file", "path", "index",
              "count", "size", "hash", "map", "item", "entry", "key", "value", "state", "link",
              "time", "scan", "sync", "data", "buf", "offset", "name", "root", "tree", "mesh")
_WORDS = ("the", "a", "of", "to", "is", "when", "every", "one", "this", "that", "not", "from",
          "what", "it", "on", "in", "as", "so", "for", "each", "file", "block", "peer", "node")


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))


def _code_line(rng: random.Random) -> str:
    """One line of Python-looking source: identifiers, calls, numbers, comments."""
    depth = "    " * rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
    kind = rng.random()
    if kind < 0.08:
        args = ", ".join(_ident(rng) for _ in range(rng.randint(0, 4)))
        return f"\n    def {_ident(rng)}(self{', ' if args else ''}{args}) -> None:"
    if kind < 0.2:
        return depth + "# " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
    if kind < 0.35:
        return f"{depth}if {_ident(rng)} {rng.choice(('==', '<', '>=', 'is not', 'in'))} {_ident(rng)}:"
    if kind < 0.45:
        return f"{depth}return {_ident(rng)}({_ident(rng)}, {rng.randint(0, 4096)})"
    if kind < 0.5:
        return f"{depth}for {_ident(rng)} in self.{_ident(rng)}:"
    return (f"{depth}{_ident(rng)} = self.{_ident(rng)}({_ident(rng)}, "
            f"{rng.choice((_ident(rng), str(rng.randint(0, 1 << 20)), repr(_ident(rng))))})")


def _source(rng: random.Random, size: int) -> str:
    lines = [f'"""{" ".join(rng.choice(_WORDS) for _ in range(12))}."""', "",
             "from __future__ import annotations", "", f"class {_ident(rng).title().replace('_', '')}:"]
    total = sum(len(x) + 1 for x in lines)
    while total < size:
        line = _code_line(rng)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def make_text(base: Path, s: Sizes, seed: int = 4) -> Path:
    out = base / "text" / DATA
    rng = random.Random(seed)
    for d in range(s.text_dirs):
        (out / f"pkg{d:02d}").mkdir(parents=True)
    for i in range(s.text_files):
        size = rng.randint(s.text_min, s.text_max)
        (out / f"pkg{i % s.text_dirs:02d}" / f"mod{i:03d}.py").write_text(_source(rng, size))
    return out.parent


MAKERS = {"small": make_small, "tiny": make_tiny, "large": make_large, "text": make_text}


def ensure(base: Path, name: str, s: Sizes) -> Path:
    """The dataset `name` under `base` (generated once per run), as a folder holding `data/`."""
    target = base / name
    if not (target / DATA).is_dir():
        if target.exists():
            shutil.rmtree(target)
        MAKERS[name](base, s)
        # mtimes in the past, as for files that were saved a while ago
        past = os.path.getmtime(target / DATA) - 3600
        for dirpath, dirnames, filenames in os.walk(target / DATA, topdown=False):
            for n in filenames + dirnames:
                os.utime(os.path.join(dirpath, n), (past, past))
    return target


def copy_into(dataset: Path, root: Path) -> None:
    """Put a dataset's `data/` into a root (a copy keeping mtimes), untimed."""
    shutil.copytree(dataset / DATA, root / DATA, copy_function=shutil.copy2)


# -- changes -----------------------------------------------------------------------------------
def latency_change(root: Path, rep: int, s: Sizes) -> tuple[str, bytes]:
    """Save one small file of the `small` tree with new content (what an editor's save does:
    truncate and write). Returns its relative path and the new content."""
    rel = f"{DATA}/d{rep % s.small_dirs:03d}/f{rep:05d}.bin"
    content = _rand(1000 + rep, s.latency_file_bytes)
    with open(root / rel, "wb") as f:
        f.write(content)
    return rel, content


def inplace_change(root: Path, s: Sizes) -> tuple[int, bytes]:
    """Overwrite `inplace_bytes` in the middle of the large file, in place (same inode)."""
    data = _rand(2000, s.inplace_bytes)
    with open(root / DATA / LARGE_NAME, "r+b") as f:
        f.seek(s.inplace_offset)
        f.write(data)
    return s.inplace_offset, data


def insert_change(root: Path, staging: Path, s: Sizes) -> tuple[int, bytes]:
    """Insert `insert_bytes` at `insert_offset` of the large file: the new file is written aside
    (in `staging`, on the same disk) and moved over the old one, as a program saving it would."""
    data = _rand(3000, s.insert_bytes)
    src = root / DATA / LARGE_NAME
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / LARGE_NAME
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        left = s.insert_offset
        while left:
            chunk = fin.read(min(left, 4 * MiB))
            fout.write(chunk)
            left -= len(chunk)
        fout.write(data)
        shutil.copyfileobj(fin, fout, 4 * MiB)
    os.replace(tmp, src)
    return s.insert_offset, data


def text_edits(root: Path, rnd: int, s: Sizes) -> list[tuple[str, bytes, bytes]]:
    """One round of edit_text: in 3-10 random files of the `text` tree, a few lines changed,
    added or removed (1-3 edits a file), each file saved whole as an editor does. Returns
    (relative path, old content, new content) of each file saved."""
    rng = random.Random(10_000 + rnd)
    names = sorted(f"{DATA}/pkg{i % s.text_dirs:02d}/mod{i:03d}.py" for i in range(s.text_files))
    out = []
    for rel in rng.sample(names, min(len(names), rng.randint(3, 10))):
        old = (root / rel).read_bytes()
        lines = old.decode().split("\n")
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(5, len(lines) - 1)
            what = rng.random()
            if what < 0.5:
                lines[at] = _code_line(rng)
            elif what < 0.8:
                lines[at:at] = [_code_line(rng) for _ in range(rng.randint(1, 3))]
            else:
                del lines[at: at + rng.randint(1, 2)]
        new = "\n".join(lines).encode()
        with open(root / rel, "wb") as f:
            f.write(new)
        out.append((rel, old, new))
    return out


def compressed_diff(edits: list[tuple[str, bytes, bytes]]) -> int:
    """Bytes of the gzip-compressed unified diff (3 lines of context) of one round's edits:
    what a patch of them would cost, the floor the edit_text case is compared with."""
    diff = []
    for rel, old, new in edits:
        diff += difflib.unified_diff(old.decode().splitlines(True), new.decode().splitlines(True),
                                     f"a/{rel}", f"b/{rel}")
    return len(gzip.compress("".join(diff).encode(), 9, mtime=0))


def rename_change(root: Path) -> tuple[str, str]:
    old = f"{DATA}/{LARGE_NAME}"
    new = f"{DATA}/{RENAMED_NAME}"
    os.rename(root / old, root / new)
    return old, new
