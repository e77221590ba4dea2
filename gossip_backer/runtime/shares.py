"""Share links on a running node: make, list and revoke them (as signed records of the mesh's
map), and carry out what core/share.py and core/shareview.py decide when one is opened (which
file or folder a URL names): the file's bytes, a folder's listing, a streamed zip, the
password's slow-down and the download count.

A zip is written by the standard library's `zipfile` in a worker thread onto a sink that hands
each piece to the trio side through a channel of size 0: the writer waits for the network, so
memory stays at one piece (1 MiB) whatever the folder's size, and nothing touches the disk.
"""

from __future__ import annotations

import math
import secrets
import time
import zipfile

import trio

from gossip_backer.core import listing, shareview
from gossip_backer.core import share as rules
from gossip_backer.core.shareview import Located
from gossip_backer.core.paths import BadPath, check
from gossip_backer.core.record import FILE, FileRecord
from gossip_backer.core.share import Share, ShareCount
from gossip_backer.disk.reader import NotServable, OpenFile, open_regular
from gossip_backer.errors import UserError

PIECE = 1 << 20
MAX_PASSWORD = 1024


Opened = Located  # what `ShareService.open` answers (core/shareview.py)


def view(metamap, s: Share, base: str | None) -> dict:
    """SPEC's object (`url`, `token`, `path`, `expires`) plus what the GUI shows."""
    return {"url": f"{base}s/{s.token}/" if base else None, "token": s.token, "path": s.path,
            "expires": s.expires or None, "password": bool(s.password),
            "downloads": metamap.downloads(s.token), "created": s.created,
            "expired": rules.state(s, time.time()) == rules.EXPIRED}


def spec_view(metamap, s: Share, base: str | None) -> dict:
    return {k: v for k, v in view(metamap, s, base).items() if k in ("url", "token", "path", "expires")}


def listed(metamap, base: str | None) -> list[dict]:
    shares = [held[2] for held in metamap.shares.values() if not held[2].revoked]
    return [view(metamap, s, base) for s in sorted(shares, key=lambda s: (s.created, s.token))]


def new_share(state, path: str, expires: float | None, password: str | None, *,
              offline: bool = False) -> Share:
    """A new link's record, checked (CPU-heavy with a password: scrypt; call it off the loop).
    `offline` (a stopped node) also accepts a path only its disk has so far: its next scan
    publishes it."""
    path = shareable(state.metamap, path, state.root if offline else None)
    if expires is not None and not (0 < expires <= 10 * 365 * 86400):
        raise UserError("--expires must be a positive number of seconds (at most 10 years)")
    if password is not None and not (0 < len(password) <= MAX_PASSWORD):
        raise UserError(f"the password must be 1 to {MAX_PASSWORD} characters")
    if state.is_read_only():
        raise UserError("this node is a read-only member: make the link on a read-write node")
    hashed = rules.hash_password(password, secrets.token_bytes(rules.SALT_BYTES)) if password else b""
    now = time.time()
    return Share(secrets.token_urlsafe(24), path, math.ceil(now + expires) if expires else 0, hashed,
                 False, int(now), state.metamap.clock + 1)


def revocation(state, token: str) -> Share:
    current = state.metamap.share(token)
    if current is None or current.revoked:
        raise UserError(f"no such share link: {token}")
    return Share(current.token, current.path, current.expires, b"", True, current.created,
                 state.metamap.clock + 1)


def cli_path(root, text: str) -> str:
    """A PATH argument (relative to ROOT, or absolute inside it; "" or "." for all of it)."""
    from gossip_backer.runtime.history import mesh_path

    return "" if text.strip() in ("", ".", "/") or str(text) == str(root) else mesh_path(root, text)


def shareable(metamap, path: str, root=None) -> str:
    text = path.strip().strip("/")
    if text in ("", "."):
        return ""
    try:
        path = check(text)
    except BadPath as exc:
        raise UserError(f"not a path in the mesh: {exc}") from None
    rec = metamap.winner(path)
    if listing.is_folder(metamap, path) or (rec is not None and not rec.deleted and rec.kind == FILE):
        return path
    if root is not None and (root / path).exists() and not (root / path).is_symlink():
        return path
    raise UserError(f"no such file or folder in the mesh: {path}")


class ShareService:
    """Share links on a running node (see the module docstring)."""

    def __init__(self, state, folder, spread, web_url) -> None:
        """`folder`: the mirrored folder (None: nothing served from disk); `spread`: publishes
        our new updates; `web_url()`: the web GUI's URL, the links' base without a public one."""
        self._state = state
        self._folder = folder
        self._spread = spread
        self._web_url = web_url
        self.guard = rules.PasswordGuard()
        self.public_url: str | None = None  # `run --public`: the base of every link

    @property
    def _map(self):
        return self._state.metamap

    # -- managing links ----------------------------------------------------------------------
    def base_url(self) -> str | None:
        return self.public_url or self._web_url()

    def list(self) -> list[dict]:
        return listed(self._map, self.base_url())

    async def create(self, path: str, expires: float | None, password: str | None) -> dict:
        share = await trio.to_thread.run_sync(new_share, self._state, path, expires, password)
        self._spread([self._state.make(share)])
        return spec_view(self._map, share, self.base_url())

    def revoke(self, token: str) -> dict:
        self._spread([self._state.make(revocation(self._state, token))])
        return {"revoked": token}

    # -- serving links -------------------------------------------------------------------------
    def active(self, token: str) -> Share | None:
        """The link when it may be served right now (not revoked, not expired), else None."""
        s = self._map.share(token)
        return s if rules.state(s, time.time()) == rules.ACTIVE else None

    def open(self, token: str, rest: str) -> Opened | None:
        """What `/s/TOKEN/REST` names, or None (core/shareview.py decides)."""
        return shareview.locate(self._map, self._map.share(token), rest, time.time(),
                                self._ignored)

    def zip_name(self, opened: Opened) -> str:
        """A folder's zip is named after the folder (the root's name for a whole-root link)."""
        name = opened.path.rsplit("/", 1)[-1] if opened.path else self._state.root.name
        return (name or "share") + ".zip"

    def _ignored(self, path: str, is_dir: bool) -> bool:
        folder = self._folder
        return folder is not None and folder.ignore.matches(path, is_dir)

    def open_file(self, rec: FileRecord) -> OpenFile | None:
        """(worker thread) The file's current version on this disk, or None when this node
        does not hold that version (yet)."""
        folder = self._folder
        if folder is None:
            return None
        entry = folder.index.get(rec.path)
        if entry is None or entry.hash != rec.hash:
            return None
        try:
            opened = open_regular(folder.root, rec.path)
        except NotServable:
            return None
        if opened.size != rec.size or opened.mtime_ns != entry.mtime_ns:
            opened.close()  # changed since the scan: not the version the ETag names
            return None
        return opened

    async def check_password(self, token: str, password: str) -> bool:
        """Whether `password` opens the link, answered after the guard's delay."""
        s = self._map.share(token)
        if s is None:
            return False
        await trio.sleep(self.guard.delay(token, time.time()))
        ok = len(password) <= MAX_PASSWORD and await trio.to_thread.run_sync(
            rules.password_matches, s, password)
        if ok:
            self.guard.succeeded(token)
        else:
            self.guard.failed(token, time.time())
        return ok

    def count_download(self, token: str) -> None:
        """One more download served by this node (its own counter in the map)."""
        mine = self._map.share_counts.get(token, {}).get(self._state.identity.public, 0)
        self._spread([self._state.make(ShareCount(token, mine + 1))])

    async def write_zip(self, opened: Opened, send: trio.MemorySendChannel) -> None:
        """Write the folder as one zip archive into `send`, piece by piece (then close it).
        Raises LinkEnded when the link is revoked or expires meanwhile."""
        files = shareview.files_to_zip(self._map, opened, self._ignored)
        async with send:
            await trio.to_thread.run_sync(self._zip_thread, files, opened.path, opened.share.token,
                                          send, abandon_on_cancel=True)

    def _zip_thread(self, files: list[FileRecord], base: str, token: str,
                    send: trio.MemorySendChannel) -> None:
        sink = _ChannelSink(send)
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for rec in files:
                if trio.from_thread.run_sync(self.active, token) is None:
                    raise LinkEnded(token)
                opened = trio.from_thread.run_sync(self.open_file, rec)
                if opened is None:
                    continue  # not on this node (yet): left out rather than stall the download
                name = rec.path[len(base):].lstrip("/") if base else rec.path
                info = zipfile.ZipInfo(name, time.gmtime(rec.mtime_ns // 1_000_000_000)[:6])
                info.external_attr = (rec.mode & 0o777 | 0o100000) << 16
                with opened, zf.open(info, "w", force_zip64=rec.size > 0x7FFF0000) as out:
                    offset = 0
                    while offset < opened.size:
                        chunk = opened.read(offset, min(PIECE, opened.size - offset))
                        if not chunk:
                            break
                        out.write(chunk)
                        offset += len(chunk)
        sink.flush_all()


class LinkEnded(Exception):
    """The link was revoked or expired while a download was under way."""


class _ChannelSink:
    """A write-only, non-seekable file for zipfile: gathers writes into pieces of PIECE bytes
    and sends each to the trio side (waiting until it is taken)."""

    def __init__(self, send: trio.MemorySendChannel) -> None:
        self._send = send
        self._buf = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buf += data
        self._written += len(data)
        if len(self._buf) >= PIECE:
            self._ship()
        return len(data)

    def tell(self) -> int:
        return self._written

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def flush_all(self) -> None:
        if self._buf:
            self._ship()

    def _ship(self) -> None:
        piece, self._buf = bytes(self._buf), bytearray()
        trio.from_thread.run(self._send.send, piece)
