"""First-use mistakes on real processes: each ends in one line on stderr and exit 1, and a
running node is never harmed by them (issue 11)."""

from __future__ import annotations

import socket

from tests.e2e.conftest import backer, backer_json


def _one_line_error(out) -> str:
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr.strip()


def test_second_run_refuses_and_leaves_the_first_node_running(tmp_path, daemons):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    first = daemons(root).start()
    line = _one_line_error(backer("run", str(root), "--listen", "127.0.0.1:0", "--no-web",
                                  check=False, timeout=30))
    assert "already running" in line
    # A client that connects and hangs up at once (what the second run used to do) changes
    # nothing either.
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(root / ".backer" / "control.sock"))
    assert first.proc.poll() is None
    status = first.status()
    assert status["running"] is True and status["listen"] == first.listen


def test_peer_port_in_use_is_one_line(tmp_path):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_error(backer("run", str(root), "--listen", f"127.0.0.1:{port}",
                                      "--no-web", check=False, timeout=30))
    assert f"127.0.0.1:{port}" in line and "in use" in line


def test_web_port_in_use_is_one_line(tmp_path):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_error(backer("run", str(root), "--listen", "127.0.0.1:0",
                                      "--web", f"127.0.0.1:{port}", check=False, timeout=30))
    assert "web" in line and "in use" in line.lower()


def test_abandoned_temp_files_are_removed_at_start_up(tmp_path, daemons):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    (root / "sub").mkdir()
    stray = [root / ".backer-tmp-0badf00d-notes.txt", root / "sub" / ".backer-tmp-12345678-rename"]
    for p in stray:
        p.write_bytes(b"left by a crash")
    daemons(root).start()
    assert not any(p.exists() for p in stray)
    assert (root / "sub").is_dir()
