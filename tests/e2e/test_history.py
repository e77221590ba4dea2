"""history / restore end to end (SPEC.md): versions known anywhere, restore spreads as a change."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest

from tests.e2e.conftest import backer, backer_json, in_sync, invite, join, mesh, wait_until

pytestmark = pytest.mark.e2e


def _save(node, name: str, data: bytes) -> None:
    (node.root / name).write_bytes(data)
    time.sleep(1.2)  # distinct mtimes, and past the settle delay


def _on_all(nodes, name: str, data: bytes) -> None:
    wait_until(lambda: all((n.root / name).exists() and (n.root / name).read_bytes() == data
                           for n in nodes), what=f"{name} == {data!r} everywhere")


def test_history_lists_versions_and_restore_spreads(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    for v in (b"v1", b"v2", b"v3"):
        _save(a, "f.txt", v)
    _on_all([a, b], "f.txt", b"v3")
    hist = backer_json("history", str(b.root), "f.txt")
    assert [h["size"] for h in hist][:3] == [2, 2, 2]
    assert [h["time"] for h in hist] == sorted((h["time"] for h in hist), reverse=True)
    assert {"version", "time", "size", "hash", "node_id", "deleted"} <= set(hist[0])
    restored = backer_json("restore", str(b.root), "f.txt")
    assert restored["path"] == "f.txt" and restored["version"] != hist[0]["version"]
    _on_all([a, b], "f.txt", b"v2")
    assert backer_json("history", str(a.root), "f.txt")[0]["version"] == restored["version"]

    (a.root / "f.txt").unlink()
    wait_until(lambda: not (b.root / "f.txt").exists(), what="deletion spread")
    assert backer_json("history", str(b.root), "f.txt")[0]["deleted"] is True
    backer_json("restore", str(b.root), "f.txt")  # a deleted file's last content
    _on_all([a, b], "f.txt", b"v2")


def test_restore_a_version_only_another_node_kept(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    _save(a, "doc.txt", b"first draft")
    _save(a, "doc.txt", b"second draft")
    _on_all([a, b], "doc.txt", b"second draft")
    join(tmp_path / "C", invite(a), "late")
    c = daemons(tmp_path / "C").start()
    _on_all([c], "doc.txt", b"second draft")
    first = [h for h in backer_json("history", str(c.root), "doc.txt") if h["size"] == len(b"first draft")]
    assert first, "C lists the version that only A and B archived"
    backer_json("restore", str(c.root), "doc.txt", "--version", first[0]["version"])
    _on_all([a, b, c], "doc.txt", b"first draft")


def test_history_and_restore_errors_are_user_errors(tmp_path, daemons):
    a, = mesh(tmp_path, daemons, 1)
    _save(a, "x.txt", b"only version")
    wait_until(lambda: backer("history", str(a.root), "x.txt", check=False).returncode == 0)
    for args in (("history", "nope.txt"), ("restore", "nope.txt"), ("restore", "x.txt"),
                 ("restore", "x.txt", "--version", "0123456789abcdef"), ("history", "../etc/passwd")):
        out = backer(args[0], str(a.root), *args[1:], check=False)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_restore_on_a_stopped_node_spreads_when_it_runs(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    _save(a, "n.txt", b"old")
    _save(a, "n.txt", b"new")
    in_sync([a, b])
    b.stop()
    assert backer_json("restore", str(b.root), "n.txt")["path"] == "n.txt"
    assert (b.root / "n.txt").read_bytes() == b"old"
    b.start()
    _on_all([a, b], "n.txt", b"old")


def test_a_second_restore_of_a_path_while_one_is_under_way_is_refused(tmp_path, daemons):
    """A double click on "restore": the second one says a restore is under way (both would build
    the file in the same temp file), the first lands, and the mesh gets the restored version."""

    a, b = mesh(tmp_path, daemons, 2)
    big = os.urandom(32 << 20)  # only A and B keep it: C fetches it
    _save(a, "movie.bin", big)
    _on_all([b], "movie.bin", big)
    _save(a, "movie.bin", b"cut")
    _on_all([a, b], "movie.bin", b"cut")
    join(tmp_path / "C", invite(a), "late")
    c = daemons(tmp_path / "C").start()
    _on_all([c], "movie.bin", b"cut")
    old = [h["version"] for h in backer_json("history", str(c.root), "movie.bin")
           if h["size"] == len(big)]
    # A is frozen, so the restore that arrives first waits ASK_TIMEOUT (3 s) for A's history
    # answer: the second surely arrives while it is under way, however fast the machine is
    a.proc.send_signal(signal.SIGSTOP)
    pool = ThreadPoolExecutor(2)
    try:
        pending = [pool.submit(backer, "restore", str(c.root), "movie.bin", "--version", old[0],
                               check=False) for _ in range(2)]
        wait(pending, timeout=60, return_when=FIRST_COMPLETED)  # the refusal comes at once
    finally:
        a.proc.send_signal(signal.SIGCONT)  # the restore under way may fetch from A too
        pool.shutdown(wait=False)
    runs = [f.result(timeout=60) for f in pending]
    assert sorted(r.returncode for r in runs) == [0, 1], [r.stderr for r in runs]
    refused = next(r for r in runs if r.returncode)
    assert "a restore of movie.bin is under way" in refused.stderr
    wait_until(lambda: all((n.root / "movie.bin").stat().st_size == len(big) for n in (a, b, c)),
               timeout=60, what="the restored version everywhere")
    assert (a.root / "movie.bin").read_bytes() == big
