"""A node's persistent state under ROOT/.backer/: identity, mesh secret, store, replicated map.

Layout (SPEC.md: `.backer/` is 0700 and key files 0600):
    ROOT/.backer/identity.key   the node's Ed25519 seed
    ROOT/.backer/mesh.key       the mesh secret (also the Secret Handshake network key)
    ROOT/.backer/store.db       SQLite: update log, config, invites, file index, shares
    ROOT/.backer/control.sock   the running node's control socket
    ROOT/.backer/versions/      kept revisions
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

import trio

from gossip_backer.core.ids import NodeId, mesh_id_of
from gossip_backer.core.invite import Invite
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.paths import STATE_DIR
from gossip_backer.core.record import Grant, LiveGlob, MemberInfo, Payload, Revoke, SignedUpdate
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from gossip_backer.errors import LocalError, UserError
from gossip_backer.store.db import open_db
from gossip_backer.runtime.signing import SigningBatch
from gossip_backer.runtime.storethread import StoreThread
from gossip_backer.store.repo import Repo
from gossip_backer.wire.codec import pack, unpack

IDENTITY_FILE = "identity.key"
MESH_FILE = "mesh.key"
STORE_FILE = "store.db"
CONTROL_FILE = "control.sock"
DEFAULT_INVITE_SECONDS = 7 * 24 * 3600
_UNREAD = object()


def state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _prepare_root(root: Path) -> Path:
    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    if state_dir(root).exists():
        raise UserError(f"{root} is already a gossip-backer node ({STATE_DIR}/ exists)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        state_dir(root).mkdir(mode=0o700)
        os.chmod(state_dir(root), 0o700)
    except OSError as exc:
        raise UserError(f"cannot create {state_dir(root)}: {exc.strerror}") from None
    return root


class NodeState:
    """Everything a node keeps across restarts, loaded; `make()` records a local change."""

    def __init__(self, root: Path, identity: Identity, mesh_secret: bytes, repo: Repo) -> None:
        self.root = root
        self.identity = identity
        self.mesh_secret = mesh_secret
        self.repo = repo
        self.store: StoreThread | None = None  # a running node's store thread (start_store)
        self._index_rows: list | None = None  # the local index, read ahead by open(preload=True)
        self._name: str | None = None
        self._invite: object = _UNREAD
        self._signing: SigningBatch | None = None  # our next updates, being signed off the loop
        self._sign_turn = trio.Lock()  # one such batch at a time, in the order they were asked
        self.founder: bytes = repo.get_config("founder")
        self.mesh_id = mesh_id_of(mesh_secret, NodeId(self.founder))
        self.verifier = Verifier(self.mesh_id)
        self.metamap = MetaMap(self.founder, self.verifier)
        self.metamap.apply_all(repo.each_update(), keep=False)
        self.metamap.drain_dropped()
        self.pending_invite()  # read now, while no loop waits (see pending_invite)
        _ = self.name

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def init(cls, root: Path, name: str | None = None) -> "NodeState":
        """`backer init`: a new identity and a new mesh founded by it."""
        root = _prepare_root(root)
        identity = Identity.generate()
        secret = secrets.token_bytes(32)
        state = cls._create(root, identity, secret, identity.public, name)
        state.make(Grant(identity.public, state.name, False, state.metamap.clock + 1))
        return state

    @classmethod
    def join(cls, root: Path, invite: Invite, name: str | None = None) -> "NodeState":
        """`backer join`: a new identity in an existing mesh; the grant comes at first contact."""
        if invite.expires < time.time():
            raise UserError("the invite has expired; ask for a new one")
        root = _prepare_root(root)
        identity = Identity.generate()
        state = cls._create(root, identity, invite.mesh_secret, invite.founder, name)
        state.repo.set_config("invite", pack(invite.to_plain()))
        state._invite = _UNREAD
        state.repo.set_config("bootstrap", pack([[invite.inviter, list(invite.addresses)]]))
        return state

    @classmethod
    def _create(cls, root: Path, identity: Identity, secret: bytes, founder: bytes,
                name: str | None) -> "NodeState":
        sd = state_dir(root)
        identity.save(sd / IDENTITY_FILE)
        _write_secret(sd / MESH_FILE, secret)
        repo = Repo(open_db(sd / STORE_FILE))
        os.chmod(sd / STORE_FILE, 0o600)
        repo.set_config("founder", founder)
        repo.set_config("name", name or socket.gethostname())
        repo.set_config("created", time.time())
        return cls(root, identity, secret, repo)

    @classmethod
    def open(cls, root: Path, *, preload_index: bool = False) -> "NodeState":
        """Load a node's state (in a worker thread when a loop runs: it reads the whole update
        log); `preload_index` reads the local index too, for a node about to run."""
        state = cls._open(root)
        if preload_index:
            state._index_rows = state.repo.index_all(like=state.metamap.files)
        return state

    @classmethod
    def _open(cls, root: Path) -> "NodeState":
        root = Path(root).expanduser().absolute()
        sd = state_dir(root)
        if not (sd / IDENTITY_FILE).exists():
            raise UserError(f"{root} is not a gossip-backer node (run `backer init {root}` first)")
        identity = Identity.load(sd / IDENTITY_FILE)
        try:
            secret = (sd / MESH_FILE).read_bytes()
        except OSError as exc:
            raise LocalError(f"cannot read {sd / MESH_FILE}: {exc.strerror}") from None
        return cls(root, identity, secret, Repo(open_db(sd / STORE_FILE)))

    # -- facts -----------------------------------------------------------------------------
    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    @property
    def name(self) -> str:
        """This node's name (read once: it is set when the node is made)."""
        if self._name is None:
            self._name = self.repo.get_config("name") or ""
        return self._name

    @property
    def control_path(self) -> Path:
        return state_dir(self.root) / CONTROL_FILE

    def is_member(self) -> bool:
        return self.identity.public in self.metamap.membership.members

    def is_read_only(self) -> bool:
        m = self.metamap.membership.members.get(self.identity.public)
        return m is None or m.read_only or m.revoked

    # -- local changes ---------------------------------------------------------------------
    def make(self, payload: Payload) -> SignedUpdate:
        """Sign `payload` as this node's next update, apply it and store it (one transaction)."""
        return self.make_many([payload])[0]

    def make_many(self, payloads: list[Payload]) -> list[SignedUpdate]:
        """Sign, apply and store several local changes in one transaction (a scan's worth).
        A batch being signed off the loop is finished first: it holds the numbers before ours."""
        self.finish_signing()
        return self._make_here(payloads)

    def _make_here(self, payloads: list[Payload]) -> list[SignedUpdate]:
        updates = []
        for payload in payloads:
            seq = self.metamap.seq_of(self.identity.public) + 1
            update = make_update(self.identity, self.mesh_id, seq, payload)
            outcome = self.metamap.apply(update, signed_here=True)
            if outcome not in (Outcome.APPLIED, Outcome.HELD):
                raise LocalError(f"own update refused by the map: {outcome.value}")
            updates.append(update)
        if updates:
            self.persist(updates)
        return updates

    async def make_many_off_loop(self, payloads: list[Payload],
                                 then: Callable[[list[SignedUpdate]], None]) -> list[SignedUpdate]:
        """`make_many` with the encoding and signing in a worker thread, the loop free meanwhile;
        then the batch is applied, stored (the loop waits for the store: no peer may see an
        update of ours that a crash could take back) and `then(updates)` spreads it. Updates
        keep their numbers' order everywhere: a `make_many` called meanwhile first waits for
        this batch and applies, stores and spreads it; batches asked together are made one
        after the other. Once signing has begun the batch is committed even if the caller is
        cancelled (a stop): nothing is half-made. (Storing in the store thread before applying,
        the loop free meanwhile, measured slower initial syncs: see the README.)"""
        async with self._sign_turn:
            batch = SigningBatch(self.metamap.seq_of(self.identity.public) + 1, payloads, then)
            self._signing = batch
            try:
                await trio.to_thread.run_sync(batch.sign, self.identity, self.mesh_id)
            finally:
                if not batch.signed.is_set() and self._signing is batch:  # cancelled before
                    self._signing = None  # its thread began: nothing was made
                self.finish_signing()
            return batch.updates

    def finish_signing(self) -> None:
        """Apply, store and spread the batch being signed off the loop (waiting for its
        signatures), so that an update made now numbers after it."""
        batch, self._signing = self._signing, None
        if batch is None:
            return
        batch.sign(self.identity, self.mesh_id)  # here, if its worker thread has not begun
        batch.signed.wait()
        if batch.error is not None:
            raise LocalError(f"signing our updates failed: {batch.error}") from batch.error
        if self._given_back(batch):  # a peer gave us back updates of ours we had lost:
            batch.updates = self._make_here(batch.payloads)  # numbered after them
        else:
            self._apply_own(batch.updates)
        if batch.updates:
            batch.then(batch.updates)

    def _given_back(self, batch: SigningBatch) -> bool:
        return self.metamap.seq_of(self.identity.public) >= batch.first

    def _apply_own(self, updates: list[SignedUpdate]) -> None:
        for update in updates:
            outcome = self.metamap.apply(update, signed_here=True)
            if outcome not in (Outcome.APPLIED, Outcome.HELD):
                raise LocalError(f"own update refused by the map: {outcome.value}")
        if updates:
            self.persist(updates)

    def persist(self, updates: list[SignedUpdate]) -> None:
        """Store our own new updates before anything else happens (see runtime/storethread.py:
        no peer may see an update of ours that a crash could take back)."""
        self._store_wait(self.repo.save_updates, updates, self.metamap.drain_dropped())

    def save_received(self, updates: list[SignedUpdate], dropped: list[tuple[bytes, int]]) -> None:
        """Store updates received from peers, behind (a crash loses nothing a peer cannot send
        again), in order with every other store call."""
        self.store_later(self.repo.save_updates, updates, dropped)

    def take_index_rows(self) -> list:
        """The local index, as preloaded by `open` (read now otherwise)."""
        rows, self._index_rows = self._index_rows, None
        return rows if rows is not None else self.repo.index_all(like=self.metamap.files)

    # -- the store thread --------------------------------------------------------------------
    def start_store(self) -> StoreThread:
        """From now on the running node reaches SQLite through one worker thread."""
        if self.store is None:
            self.store = StoreThread()
        return self.store

    async def store_call(self, fn, *args):
        """`fn(*args)` in the store thread, in order, while the loop runs on (direct without one)."""
        return fn(*args) if self.store is None else await self.store.call(fn, *args)

    def store_later(self, fn, *args) -> None:
        """`fn(*args)` in the store thread, in order, not waited for (direct without one)."""
        if self.store is None:
            fn(*args)
        else:
            self.store.submit(fn, *args)

    def _store_wait(self, fn, *args):
        return fn(*args) if self.store is None else self.store.wait(fn, *args)

    def info_update(self, addresses: list[str]) -> SignedUpdate | None:
        """Announce our name and addresses if they changed (signed by ourselves)."""
        me = self.metamap.membership.members.get(self.identity.public)
        if me is not None and me.name == self.name and list(me.addresses) == addresses:
            return None
        clock = self.metamap.clock + 1
        return self.make(MemberInfo(self.identity.public, self.name, tuple(addresses), clock))

    def revoke(self, node: bytes) -> SignedUpdate:
        members = self.metamap.membership.members
        if node not in members or members[node].revoked:
            raise UserError(f"{NodeId(node)} is not a member of this mesh")
        if node == self.identity.public:
            raise UserError("a node cannot remove itself here; remove it from another member")
        if self.is_read_only():
            raise UserError("this node is a read-only member and cannot remove members")
        cutoff = self.metamap.seq_of(node)
        return self.make(Revoke(node, cutoff, self.metamap.clock + 1))

    def set_live(self, glob: str, on: bool) -> SignedUpdate | None:
        """`backer live`: mark (or unmark) files matching `glob` as live-edit, mesh-wide."""
        glob = glob.strip()
        if not glob or len(glob) >= 1000 or "\0" in glob or glob in (".", "/"):
            raise UserError(f"not a usable glob: {glob!r} (for example '*.md' or 'notes/*.txt')")
        if self.is_read_only():
            raise UserError("this node is a read-only member and cannot change live files")
        if (glob in self.metamap.live_globs()) == on:
            return None  # already so
        return self.make(LiveGlob(glob, on, self.metamap.clock + 1))

    # -- invites ---------------------------------------------------------------------------
    def new_invite(self, addresses: list[str], read_only: bool, seconds: float,
                   now: float) -> tuple[Invite, bytes]:
        """An invite, checked and made but not stored yet, and its one-time key's public half
        (the store's row names the invite by it)."""
        if not self.is_member():
            raise UserError("this node has not been admitted to the mesh yet: run it until it "
                            "reaches its inviter, then invite")
        if self.is_read_only():
            raise UserError("this node is a read-only member and cannot invite")
        if not addresses:
            raise UserError("no address to put in the invite: start `backer run` or pass --address")
        seed = secrets.token_bytes(32)
        invite = Invite(self.mesh_secret, self.founder, self.identity.public, tuple(addresses),
                        read_only, now + seconds, seed)
        return invite, Identity.from_seed(seed).public

    def create_invite(self, addresses: list[str], read_only: bool, seconds: float) -> Invite:
        """An invite made and stored at once, by a process with no node running (a running
        node makes its own and keeps them in memory: runtime/invites.py)."""
        now = time.time()
        invite, key = self.new_invite(addresses, read_only, seconds, now)
        self._store_wait(self.repo.add_invite, key, b"", read_only, invite.expires, now)
        return invite

    def pending_invite(self) -> Invite | None:
        """The invite this node joined with, until the inviter answered (kept in memory: the
        status and the dialer ask often, and must not wait for the store)."""
        if self._invite is _UNREAD:
            raw = self.repo.get_config("invite")
            self._invite = Invite._from_plain(unpack(raw)) if raw else None
        return self._invite

    async def forget_invite(self) -> None:
        """The inviter answered: the invite is spent."""
        self._invite = None
        await self.store_call(self.repo.delete_config, "invite")

    def close(self) -> None:
        """Write what the store thread holds, end it, close the store."""
        store, self.store = self.store, None
        try:
            if store is not None:
                store.close()
        finally:
            self.repo.close()
