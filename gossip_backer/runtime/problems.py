"""What keeps a node from mirroring that the user must know about, with what to do about it.

`status --json` (and the web's /api/status) carries them as `problems`: a list of
`{"kind", "message", "action"}`, plus `skipped` (names the scans refused, as shown to a human)
and `unreadable` (path -> error); human `status` and the dashboard print them. Kinds:
`paused` (the root is missing or emptied), `invite` (refused, used, tampered or not yet
answered), `removed` (this node was revoked from the mesh), `unavailable` (content no connected
node holds), `skipped`, `unreadable`.

Paths are shown as `core.paths.escape` writes them: each byte of a name that is not UTF-8 as
`\\xNN`, so the JSON stays valid and the name can be typed back (`backer history ROOT 'a\\xffb'`).

`LocalProblems` collects what the scans report, and the versions this node's disk could not hold
(`cannot_hold`: a name the disk refuses, or a case-twin on a case-insensitive disk). An entry lives until a scan reads the path fine, or the path is
gone (checked when shown: one lstat per entry), so nothing needs a full scan to clear it.
"""

from __future__ import annotations

import os

from gossip_backer.core.paths import escape

MAX_LISTED = 100


def shown(path: str) -> str:
    """A path as valid text (the bytes of a name that are not UTF-8 as `\\xNN`)."""
    return escape(path)


class LocalProblems:
    """Paths the scans could not mirror (see the module docstring)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.refused: set[str] = set()
        self.unreadable: dict[str, str] = {}
        self.cannot_hold: dict[str, str] = {}  # mesh path -> why this disk cannot hold it

    def not_held(self, path: str, why: str) -> None:
        """A version of `path` was skipped because this disk cannot hold its name."""
        if len(self.cannot_hold) < 10 * MAX_LISTED:
            self.cannot_hold[path] = why

    def held(self, path: str) -> None:
        """`path` was written after all (or its version moved on)."""
        self.cannot_hold.pop(path, None)

    def note(self, result) -> None:
        """Take in a `disk.scan.ScanResult` (full or partial)."""
        for path in result.refused:
            if len(self.refused) < 10 * MAX_LISTED:
                self.refused.add(path)
        for path, why in result.errors.items():
            if len(self.unreadable) < 10 * MAX_LISTED:
                self.unreadable[path] = why
        for path in list(self.unreadable):  # read fine this time, or gone
            if path not in result.errors and (path in result.entries or path in result.deleted):
                del self.unreadable[path]

    def current(self) -> tuple[list[str], dict[str, str]]:
        """(refused paths still on disk, unreadable paths still unreadable), both sorted."""
        self.refused = {p for p in self.refused if _exists(os.path.join(self.root, p))}
        self.unreadable = {p: why for p, why in self.unreadable.items()
                           if _exists(os.path.join(self.root, p))}
        return sorted(self.refused), dict(sorted(self.unreadable.items()))


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
    except (OSError, ValueError):
        return False
    return True


def _why_refused(path: str) -> str:
    return ("its name cannot be mirrored safely (reserved, one with another name once "
            "NFC-normalised, or a link whose target is not UTF-8)")


def describe(*, paused: str | None = None, invite_error: str | None = None,
             invite_wait: str | None = None, pending_invite: bool = False, member: bool = True,
             removed: bool = False, local: LocalProblems | None = None,
             unavailable: list[str] = (), disk_full: str | None = None) -> dict:
    """The status keys for the problems of a node: `problems`, and `skipped` / `unreadable`
    when there are any."""
    out: list[dict] = []
    extra: dict = {}
    if removed:
        out.append(_p("removed", "this node was removed from the mesh: it no longer sends or "
                      "receives changes", "ask a member for a new invite and join again with "
                      "`backer join` in a new folder"))
    elif not member:
        if invite_error:
            out.append(_p("invite", invite_error,
                          "ask a member for a new invite, then `backer join` it in a new folder"))
        elif pending_invite:
            why = f" ({invite_wait})" if invite_wait else ""
            out.append(_p("invite", "not admitted yet: waiting for the inviter to answer" + why,
                          "keep `backer run` going and check that the inviter runs and can be "
                          "reached; a mistyped or tampered invite never works: ask for a new one"))
        else:
            out.append(_p("invite", "this node is not a member of any mesh: its invite was "
                          "refused or already used",
                          "ask a member for a new invite, then `backer join` it in a new folder"))
    if paused:
        out.append(_p("paused", f"mirroring is paused: {paused}",
                      "bring the folder back (mount the disk, restore the folder); mirroring "
                      "resumes by itself"))
    if disk_full:
        out.append(_p("disk_full", f"pulling is paused: {disk_full}",
                      "free some space on this node's disk (every file it had is intact); "
                      "pulling resumes by itself within seconds"))
    if unavailable:
        out.append(_p("unavailable", f"{len(unavailable)} file(s) have a version whose content no "
                      f"connected node holds, e.g. {unavailable[0]!r}: this node keeps what it has",
                      "start (or reconnect) a node that holds them; they are fetched as soon as "
                      "it is back"))
    if local is not None:
        refused, unreadable = local.current()
        skipped = ([(p, _why_refused(p)) for p in refused]
                   + sorted(local.cannot_hold.items()))
        if skipped:
            extra["skipped"] = [{"path": shown(p), "reason": why} for p, why in skipped[:MAX_LISTED]]
            first, why = skipped[0]
            out.append(_p("skipped", f"{len(skipped)} name(s) not mirrored, e.g. "
                          f"{shown(first)!r}: {why}",
                          "rename them (see `skipped` in `status --json`)"))
        if unreadable:
            first = next(iter(unreadable))
            extra["unreadable"] = {shown(p): why for p, why in list(unreadable.items())[:MAX_LISTED]}
            out.append(_p("unreadable", f"{len(unreadable)} path(s) cannot be read, e.g. "
                          f"{shown(first)!r}: {unreadable[first]}",
                          "fix their permissions (the node must be able to read them)"))
    return {"problems": out, **extra}


def _p(kind: str, message: str, action: str) -> dict:
    return {"kind": kind, "message": message, "action": action}
