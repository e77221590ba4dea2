"""The web GUI's views of the mesh's files (`/api/files`, `/api/conflicts`) and the resolution
of a conflict from the GUI.

Resolving is done on this node's disk, as a user would by hand; the scan that follows publishes
it, so the choice is an ordinary change that spreads to the mesh:
- "original": the conflict copy is deleted (kept in the revision archive);
- "copy": the copy's content becomes the path's new version (mtime now, the content it replaces
  archived), and the copy is deleted;
- "both": the copy is renamed to an ordinary name (core/conflict.py `kept_name`).
"""

from __future__ import annotations

import time

import trio

from gossip_backer.core import listing
from gossip_backer.core.conflict import is_conflict_copy, kept_name, original_of
from gossip_backer.core.paths import BadPath, check
from gossip_backer.core.record import FILE
from gossip_backer.disk import apply
from gossip_backer.disk.apply import Stat, TempFile
from gossip_backer.errors import UserError
from gossip_backer.protocol import history
from gossip_backer.runtime.history import copy_into

KEEP = ("original", "copy", "both")


def folder_path(text: str) -> str:
    text = text.strip().strip("/")
    if text in ("", "."):
        return ""
    try:
        return check(text)
    except BadPath as exc:
        raise UserError(f"not a path in the mesh: {exc}") from None


def files(metamap, path: str) -> list[dict]:
    """SPEC's `/api/files?path=DIR`: the entries of one folder of the mesh, sorted by name."""
    folder = folder_path(path)
    if not listing.is_folder(metamap, folder):
        raise UserError(f"no such folder in the mesh: {folder}")
    live = listing.live_matcher(metamap.live_globs())
    return [e.to_json() for e in listing.children(metamap, folder, live)]


def conflicts(metamap) -> list[dict]:
    return listing.conflicts(metamap)


def _stat(entry) -> Stat | None:
    return None if entry is None else Stat(entry.size, entry.mtime_ns, entry.inode, entry.kind)


async def resolve(state, folder, copy: str, keep: str) -> dict:
    """Settle the conflict of conflict copy `copy` by `keep` ("original", "copy" or "both")."""
    if folder is None:
        raise UserError("this node does not mirror its folder")
    history.refuse_restore(state.is_read_only(), False, copy)
    if keep not in KEEP:
        raise UserError(f"keep must be one of {', '.join(KEEP)}")
    copy = folder_path(copy)
    original = original_of(copy) if is_conflict_copy(copy) else None
    entry = folder.index.get(copy)
    if original is None or entry is None or entry.kind != FILE:
        raise UserError(f"not a conflict copy on this node: {copy}")
    if folder.busy(copy) or folder.busy(original):
        raise UserError(f"{original} is being synced right now; try again in a moment")
    archived: list = []
    if keep == "both":
        await trio.to_thread.run_sync(apply.rename, folder.root, copy, kept_name(copy), _stat(entry))
        changed = {copy, kept_name(copy)}
    else:
        if keep == "copy":
            await _copy_over(folder, copy, entry, original, archived)
        await trio.to_thread.run_sync(lambda: apply.remove(
            folder.root, copy, _stat(entry), archive=folder.archiver(entry, archived)))
        changed = {copy, original}
    folder.record_archived(archived)
    await folder.scan_some(changed, settle=False)
    await folder.all_published()  # answered once the resolution is in the map and spreading
    return {"path": original, "kept": keep}


async def _copy_over(folder, copy: str, entry, original: str, archived: list) -> None:
    target = folder.index.get(original)
    mode = target.mode if target is not None and target.kind == FILE else entry.mode
    tmp = await trio.to_thread.run_sync(TempFile.create, folder.root, original)

    def write() -> None:
        try:
            copy_into(tmp, folder.root / copy)
            tmp.finish(None, entry.hash, mode, time.time_ns(), _stat(target),
                       archive=folder.archiver(target, archived))
        except BaseException:
            tmp.abort()
            raise
    await trio.to_thread.run_sync(write)


# -- contents for the GUI: downloads and diffs ------------------------------------------------
def current_file(metamap, share_links, path: str):
    """(record, open file) of the current version of `path` on this disk, for a download."""
    path = folder_path(path)
    rec = metamap.winner(path) if path else None
    if rec is None or rec.deleted or rec.kind != FILE:
        raise UserError(f"no such file in the mesh: {path}")
    opened = share_links.open_file(rec)
    if opened is None:
        raise UserError(f"{path}: this node does not hold its current version yet")
    return rec, opened


def _text(data: bytes, what: str) -> str:
    from gossip_backer.core.textdiff import MAX_TEXT, as_text

    text = as_text(data)
    if text is None:
        raise UserError(f"{what} is not a text file of at most {MAX_TEXT // (1 << 20)} MiB: no diff")
    return text


def _read(source) -> bytes:
    from gossip_backer.core.textdiff import MAX_TEXT

    with open(source, "rb") as f:
        return f.read(MAX_TEXT + 1)


async def _version_text(state, folder, history_service, path: str, version: str | None,
                        listing: list, holders: dict) -> str:
    """The text of one version of `path` (None: the current file on this disk), from this
    disk when it holds it, else fetched from a peer that keeps it."""
    from gossip_backer.core.textdiff import MAX_TEXT
    from gossip_backer.runtime.history import local_source

    if folder is None:
        raise UserError("this node does not mirror its folder")
    if version is None:
        entry = folder.index.get(path)
        if entry is None or entry.kind != FILE:
            raise UserError(f"no such file on this node: {path}")
        return _text(await trio.to_thread.run_sync(_read, folder.root / path), path)
    v = history.choose(listing, version, path)
    what = f"version {version} of {path}"
    keepers = holders.get(v.id, set())
    try:
        source = local_source(state, folder.index, v, keepers)
    except UserError:
        raise UserError(f"{what} is kept only on nodes that are not connected now") from None
    if source is not None:
        return _text(await trio.to_thread.run_sync(_read, source), what)
    if v.size > MAX_TEXT:
        raise UserError(f"{what} is larger than {MAX_TEXT // (1 << 20)} MiB: no diff")
    return _text(await history_service.fetch_bytes(v, keepers, MAX_TEXT), what)


async def diff(state, folder, history_service, path: str, left: str | None,
               right: str | None, other: str | None) -> dict:
    """Side by side: versions `left` and `right` of `path` (None: the current file), or the
    current files `path` and `other` (a conflict copy beside its original)."""
    from gossip_backer.core.textdiff import side_by_side

    path = folder_path(path)
    other = folder_path(other) if other is not None else None

    listing: list = []
    holders: dict = {}
    if left is not None or right is not None:
        listing, holders = await history_service.history(path)
    parts = (state, folder, history_service)
    a = await _version_text(*parts, path, left, listing, holders)
    b = (await _version_text(*parts, other, None, [], {}) if other is not None
         else await _version_text(*parts, path, right, listing, holders))
    rows = await trio.to_thread.run_sync(side_by_side, a, b)
    return {"path": path, "other": other, "left": left, "right": right, "rows": rows}
