"""disk/livebase.py: the durable base logs of live files, on a real folder."""

from __future__ import annotations

import pytest

from gossip_backer.disk.livebase import LiveBases


def test_appends_replace_and_take_back_survive_a_reload(tmp_path) -> None:
    bases = LiveBases(tmp_path)
    assert bases.load() == {}
    bases.append("notes/a.md", b"one")
    length = bases.append("notes/a.md", b"two")
    bases.append("b é.md", b"")
    assert LiveBases(tmp_path).load() == {"notes/a.md": [b"one", b"two"], "b é.md": [b""]}
    bases.append("notes/a.md", b"refused")
    bases.take_back("notes/a.md", bases.append("notes/a.md", b"x"))  # "x" taken back
    assert LiveBases(tmp_path).load()["notes/a.md"] == [b"one", b"two", b"refused"]
    bases.take_back("notes/a.md", length + 4 + 3)
    assert LiveBases(tmp_path).load()["notes/a.md"] == [b"one", b"two"]
    bases.replace("notes/a.md", b"whole")
    assert LiveBases(tmp_path).load()["notes/a.md"] == [b"whole"]
    bases.drop("notes/a.md")  # no longer live
    bases.drop("never.md")  # no log: nothing to do
    assert LiveBases(tmp_path).load() == {"b é.md": [b""]}


def test_a_record_cut_short_by_a_crash_is_left_out(tmp_path) -> None:
    bases = LiveBases(tmp_path)
    bases.append("a.md", b"kept")
    bases.append("a.md", b"cut short")
    (log,) = (tmp_path / "live").glob("*.log")
    log.write_bytes(log.read_bytes()[:-3])
    (tmp_path / "live" / "junk.log").write_bytes(b"\x00\x00\x00\x01x")  # not a log of its path
    assert LiveBases(tmp_path).load() == {"a.md": [b"kept"]}


def test_a_live_write_waits_for_its_base_log_before_the_rename(tmp_path) -> None:
    """The log's sync runs while the file is written; the file is replaced only after it."""
    from gossip_backer.disk.apply import LocalChanged, Stat
    from gossip_backer.disk.textfile import write_text

    root = tmp_path / "root"
    root.mkdir()
    (root / "n.md").write_bytes(b"old")
    st = (root / "n.md").stat()
    bases = LiveBases(tmp_path / "state")
    length, synced = bases.append_soon("n.md", b"base")
    seen = []

    def before_replace() -> None:
        synced.result()
        seen.append((root / "n.md").read_bytes())
    expect = Stat(st.st_size, st.st_mtime_ns, st.st_ino, "file")
    write_text(root, "n.md", b"new", 0o644, expect, before_replace=before_replace)
    assert seen == [b"old"] and (root / "n.md").read_bytes() == b"new"
    assert LiveBases(tmp_path / "state").load() == {"n.md": [b"base"]} and length == 0
    with pytest.raises(LocalChanged):  # the file is not what the caller saw: no hook, no write
        write_text(root, "n.md", b"newer", 0o644, expect, before_replace=lambda: seen.append(1))
    assert seen == [b"old"] and (root / "n.md").read_bytes() == b"new"
