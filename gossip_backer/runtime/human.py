"""Human output of the CLI (what is printed without --json)."""

from __future__ import annotations

import time
from pathlib import Path


def _peers(peers: list) -> str:
    if not peers:
        return "no other members"
    rows = []
    for p in peers:
        state = "connected" if p["connected"] else "offline"
        role = "read-only" if p["read_only"] else "read-write"
        rows.append(f"{p['node_id']}  {p['name'] or '-':<16} {role:<10} {state:<9} {p['address'] or ''}")
    return "\n".join(rows)


def render(command: str, result: object) -> str:
    if command in ("init", "join"):
        return f"node {result['node_id']}\nmesh {result['mesh_id']}\nroot {result['root']}"
    if command == "invite":
        role = "read-only" if result["read_only"] else "read-write"
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(result["expires"]))
        return f"{result['invite']}\n({role}, single use, valid until {until})"
    if command == "peers":
        return _peers(result)
    if command == "remove-peer":
        return f"removed {result['removed']}"
    if command == "status":
        return _status(result)
    if command == "history":
        return "\n".join(
            f"{v['version']}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(v['time']))}  "
            + ("deleted" if v["deleted"] else f"{v['size']:>12} B") + f"  {v['node_id'][:7]}"
            for v in result)
    if command == "live":
        return "live: " + (", ".join(result["live"]) or "(no live files)")
    if command == "restore":
        return f"restored {result['path']} (new version {result['version']})"
    if command == "share":
        return _share(result)
    return str(result)


def _share(result: object) -> str:
    if isinstance(result, dict) and "revoked" in result:
        return f"revoked {result['revoked']}"
    rows = result if isinstance(result, list) else [result]
    if not rows:
        return "no share links"
    lines = []
    for s in rows:
        where = s["url"] or f"(token {s['token']}: served once the node runs with --public or a web GUI)"
        until = ("never expires" if not s["expires"] else
                 "expires " + time.strftime("%Y-%m-%d %H:%M", time.localtime(s["expires"])))
        extra = f", {s['downloads']} download(s)" if "downloads" in s else ""
        lines.append(f"{where}\n  {s['path'] or '(whole folder)'}, {until}{extra}")
    return "\n".join(lines)


def _status(s: dict) -> str:
    state = "running" if s["running"] else "stopped"
    problems = s.get("problems", [])
    if s.get("paused"):
        sync = "paused"
    elif s.get("disk_full"):
        sync = "pulling paused: the disk is full"
    elif any(p["kind"] in ("invite", "removed") for p in problems):
        sync = "not mirroring"
    elif s["in_sync"]:
        sync = "in sync"
    else:
        sync = f"syncing ({s['pending_files']} files, {s['pending_bytes']} bytes to go)"
    lines = [
        f"node    {s['node_id']} ({s['name']})",
        f"mesh    {s['mesh_id']}",
        f"state   {state}" + (f", listening on {s['listen']}" if s["listen"] else ""),
    ]
    if s.get("web"):
        lines.append(f"web     {s['web']}")
    lines.append(f"files   {s['files']} ({s['bytes']} bytes), {sync}")
    for p in problems:
        lines.append(f"problem {p['message']}")
        lines.append(f"        what to do: {p['action']}")
    if s["conflicts"]:
        lines.append("conflicts " + ", ".join(s["conflicts"]))
    if s.get("unavailable"):
        lines.append("unavailable " + ", ".join(s["unavailable"][:20]))
    lines.append(f"net     in {s['net']['bytes_in']} B, out {s['net']['bytes_out']} B")
    lines.append("peers")
    lines.append(_peers(s["peers"]))
    return "\n".join(lines)


MAX_TRANSFER_ROWS = 5


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"
    return f"{seconds // 60}:{seconds % 60:02d} left"


def watch_view(s: dict):
    """What `status --watch` draws: the status, one overall bar that fills (bytes done of the
    backlog's total, rate, time left), and at most MAX_TRANSFER_ROWS running transfers."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts = [Text(_status(s))]
    progress = s.get("progress")
    if progress:
        total, done = max(progress["total_bytes"], 1), progress["done_bytes"]
        grid = Table.grid(padding=(0, 1))
        grid.add_row(Text("overall"), ProgressBar(total=total, completed=done, width=40),
                     Text(f"{_size(done)} of {_size(total)}  {_size(progress['rate'])}/s  "
                          f"{_eta(progress['eta'])}"))
        transfers = sorted(s.get("transfers", []), key=lambda t: t["path"])
        for t in transfers[:MAX_TRANSFER_ROWS]:
            grid.add_row(Text(t["path"][-40:], overflow="ellipsis"),
                         ProgressBar(total=max(t["total_bytes"], 1), completed=t["done_bytes"], width=40),
                         Text(f"{_size(t['done_bytes'])} of {_size(t['total_bytes'])}"))
        parts.append(grid)
        running = len(transfers)
        queued = max(0, s["pending_files"] - running)
        hidden = max(0, running - MAX_TRANSFER_ROWS)
        if queued or hidden:
            parts.append(Text(f"and {hidden + queued} more file(s) ({hidden} running, "
                              f"{queued} queued)"))
    return Group(*parts)


def watch_status(control_path: Path) -> None:
    """`status --watch`: `watch_view` of the live status, refreshed until Ctrl-C."""
    from rich.live import Live
    from rich.text import Text

    from gossip_backer.runtime import control

    try:
        with Live(refresh_per_second=4) as live:
            while True:
                s = control.request(control_path, {"cmd": "status"})
                if s is None:
                    live.update(Text("the node is not running"))
                else:
                    s.pop("advertise", None)
                    live.update(watch_view(s))
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
