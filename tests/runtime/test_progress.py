"""Overall progress (issue 11): a bar that fills, with rate and time left; queued files do not
fill the screen of `status --watch`."""

from __future__ import annotations

from rich.console import Console

from gossip_backer.runtime.human import MAX_TRANSFER_ROWS, watch_view
from gossip_backer.runtime.progress import Progress


def test_done_only_grows_and_the_total_grows_with_new_work():
    p = Progress()
    assert p.update(0, 0, 0.0) is None
    first = p.update(1000, 0, 0.0)
    assert (first["done_bytes"], first["total_bytes"], first["eta"]) == (0, 1000, None)
    half = p.update(1000, 500, 1.0)  # half of a running transfer is in place
    assert (half["done_bytes"], half["total_bytes"]) == (500, 1000)
    assert half["rate"] == 500.0 and half["eta"] == 1.0
    after = p.update(400, 0, 2.0)  # a 600-byte file finished
    assert (after["done_bytes"], after["total_bytes"]) == (600, 1000)
    more = p.update(1400, 0, 3.0)  # 1000 more bytes queued: the bar does not go back
    assert (more["done_bytes"], more["total_bytes"]) == (600, 2000)
    assert p.update(0, 0, 4.0) is None  # backlog done: the next one starts afresh
    assert p.update(10, 0, 5.0)["total_bytes"] == 10


def _status(pending_files: int, transfers: int) -> dict:
    return {
        "node_id": "N", "name": "n", "mesh_id": "M", "running": True, "listen": "127.0.0.1:1",
        "files": 1, "bytes": 1, "in_sync": False, "pending_files": pending_files,
        "pending_bytes": 10 << 20, "conflicts": [], "net": {"bytes_in": 0, "bytes_out": 0},
        "peers": [], "problems": [],
        "transfers": [{"path": f"dir/file{i}.bin", "done_bytes": 1 << 19, "total_bytes": 1 << 20}
                      for i in range(transfers)],
        "progress": {"done_bytes": 3 << 20, "total_bytes": 12 << 20, "rate": 1 << 20, "eta": 9.0},
    }


def test_watch_shows_one_overall_bar_and_few_rows():
    console = Console(record=True, width=120)
    console.print(watch_view(_status(pending_files=5000, transfers=16)))
    text = console.export_text()
    assert "overall" in text and "3.0 MiB of 12.0 MiB" in text and "1.0 MiB/s" in text
    assert "0:09 left" in text
    assert text.count("dir/file") == MAX_TRANSFER_ROWS
    assert "and 4995 more file(s) (11 running, 4984 queued)" in text
    assert len(text.splitlines()) < 30
