"""An edit of a file the receiver holds crosses the wire as a delta (core/delta.py): a line
changed in a 60 KiB source file costs about that line, and the file arrives whole and right."""

from __future__ import annotations

import os

import trio

from gossip_backer import Node
from tests.runtime.conftest import joined

TEXT = b"".join(b"    value_%d = self.read(index, %d)  # one line of source\n" % (i, i * 7)
                for i in range(1200))


def _net(node: Node) -> int:
    n = node.status()["net"]
    return n["bytes_in"] + n["bytes_out"]


async def _until(b: Node, path: str, content: bytes) -> None:
    with trio.fail_after(60):
        while True:
            e = b.folder.index.get(path)
            if e is not None and e.size == len(content) and b.in_sync():
                return
            await trio.sleep(0.05)


def test_an_edited_line_crosses_as_a_delta(pair):
    root_a, root_b = pair
    src = root_a / "src" / "mod.py"
    src.parent.mkdir()
    src.write_bytes(TEXT)
    os.utime(src, (1e9, 1e9))
    at = TEXT.index(b"value_600 ")
    edited = TEXT[:at] + b"renamed_600 = self.write(key, 1)  # edited" + TEXT[at + 30:]

    async def main():
        async with joined(root_a, root_b, watch=False) as (a, b):
            await _until(b, "src/mod.py", TEXT)
            before = _net(b)
            src.write_bytes(edited)
            os.utime(src, (2e9, 2e9))
            await a.folder.scan_some({"src/mod.py"}, settle=False)
            await _until(b, "src/mod.py", edited)
            spent = _net(b) - before
            assert spent < 4096, f"{spent} bytes on the wire for one edited line"

    trio.run(main)
    assert (root_b / "src" / "mod.py").read_bytes() == edited


def test_edits_of_several_files_cross_as_deltas_in_one_batch(pair):
    """A round of edited files: their delta requests travel in one BlockBatch and the deltas
    come back in one BlockBatchData (protocol 4), each rebuilt and checked by the puller."""
    root_a, root_b = pair
    names = [f"src/m{i}.py" for i in range(4)]
    texts = {n: TEXT.replace(b"value_", b"v%d_" % i) for i, n in enumerate(names)}
    for n, text in texts.items():
        (root_a / n).parent.mkdir(exist_ok=True)
        (root_a / n).write_bytes(text)
        os.utime(root_a / n, (1e9, 1e9))
    edited = {n: t.replace(b"_600 = self.read", b"_600 = self.write") for n, t in texts.items()}

    async def main():
        async with joined(root_a, root_b, watch=False) as (a, b):
            for n, t in texts.items():
                await _until(b, n, t)
            before = _net(b)
            for n, t in edited.items():
                (root_a / n).write_bytes(t)
                os.utime(root_a / n, (2e9, 2e9))
            await a.folder.scan_some(set(names), settle=False)
            for n, t in edited.items():
                await _until(b, n, t)
            spent = _net(b) - before
            assert spent < 4 * 1400, f"{spent} bytes on the wire for four edited lines"

    trio.run(main)
    for n, t in edited.items():
        assert (root_b / n).read_bytes() == t
