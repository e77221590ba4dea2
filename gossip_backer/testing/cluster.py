"""N nodes of the real protocol in one process, on one virtual clock, from one seed.

Theory of operation
-------------------
`Cluster(ClusterConfig(...))` builds a mesh: identities, the mesh secret, link properties and the
topology all come from one `random.Random(seed)`; so do every jitter, loss and scenario choice
afterwards, and events run from one heap of (time, seq, event) (`loop.EventLoop`). The same seed
gives the same trace, byte for byte (`trace_hash`).

The mesh starts as if every member had joined long ago: the founder (node 0) has granted all
others (some read-only, `cfg.read_only`), and each node's store holds those grants. Loading a
thousand grants into a thousand maps would cost a thousand squared membership rebuilds, so one
map is loaded and each node gets a structural copy (`clone_map`, checked against a real load by
the tests); restarts and joins use the real path (`MetaMap.apply_all`, or gossip from nothing).

Links follow the topology (`full`, `ring`, `star`, `random:K`: each node links to K others drawn
at random, so degrees are about 2K). Both ends of each link dial, as `runtime.dial` does (with
the product's handshake cost): a node that starts dials at once, the lesser key after
`session.first_dial_delay`; each end redials a second after its connection ends, and with
exponential back-off (1 s doubling to 60 s) after failed attempts, each delay jittered by the
daemon's rule (`session.jittered`: half to all of it). Of two connections made at once both
nodes keep the one `session.keep_old` ranks higher. So partitions, crashes and misbehaving peers
heal the way the daemon's dialer heals them.

Convergence is watched per node by a fingerprint of (digest hash, disk fingerprint), updated
after every event that touched the node; `history` keeps each node's changes, from which the
time every node reached the final state, and the fraction of up-to-date nodes over time, follow.

Faults beyond the network (memdisk.py, "Faults"):
- `crash(i, machine=True)` is a power cut: the disk keeps what was synced and, for each change
  not synced yet, the seeded rng decides (`cfg.power_keep`) whether it reached the disk. The
  oracle learns which user contents vanished: a write nobody had published yet, or whose content
  no other live node held, was the machine's to lose (`Write.power_lost`, not a lost write of the
  mesh); a published write another node held must still survive.
- The user may write to a stopped node (`write`, `delete`); at `restart` the node sees those
  edits. Every (re)started node's first full scan comes a seeded delay after boot
  (`cfg.boot_scan`), as a daemon's first scan of a large tree does while its connections come
  up; with `cfg.rescan_delay` (lo, hi) > 0 a node restarted with offline edits uses that range
  instead. Gossip may reach it first; no disk work starts before that scan, as in the daemon.
- `vanish_root`, `empty_root`, `restore_root`: the root goes away or shows an empty mount point,
  and comes back; the node's watcher reports it (a full rescan).
- `set_quota(i, bytes)`: a full disk; a user's write that does not fit fails (returns None).
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


from gossip_backer.core.blocks import hash_bytes
from gossip_backer.core.ids import NodeId, mesh_id_of
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import Grant, Revoke
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from gossip_backer.protocol import session
from gossip_backer.protocol.gossip import digest_hash
from gossip_backer.testing.loop import EventLoop
from gossip_backer.testing.memdisk import DiskFull
from gossip_backer.testing.node import SimNode, SimStore
from gossip_backer.testing.siminvite import Claim
from gossip_backer.testing.oracle import Oracle, Write, content_id
from gossip_backer.testing.simnet import LinkSpec, SimNet

__all__ = ["Cluster", "ClusterConfig", "clone_map", "topology_edges", "EPOCH_NS",
           "META_KINDS", "BLOCK_KINDS"]

EPOCH_NS = 1_700_000_000 * 10**9  # simulated time 0, as Unix nanoseconds (for mtimes)
META_KINDS = ("Digest", "Summary", "Delta", "DeltaAck", "Ping", "Pong", "handshake")
BLOCK_KINDS = ("BlockRequest", "BlockData", "BlockMissing", "DeltaRequest", "DeltaData", "BlockBatch",
               "BlockBatchData")


@dataclass
class ClusterConfig:
    nodes: int = 10
    seed: int = 0
    topology: str = "random:3"
    tick: float = 0.25  # the daemon's tick (runtime.node.TICK): one gossip interval
    summary_interval: float = 10.0
    latency: tuple[float, float] = (0.005, 0.05)  # one-way, drawn per link
    jitter: float = 0.2  # as a fraction of the link's latency
    bandwidth: tuple[float, float] = (1.25e6, 12.5e6)  # bytes/s, drawn per link (10-100 Mbit/s)
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reliable: bool = True
    read_only: int = 0  # how many members (never the founder) are read-only
    watch_delay: tuple[float, float] = (0.05, 0.3)  # watcher debounce before a scan
    boot_scan: tuple[float, float] = (0.001, 0.05)  # a (re)started node's first full scan: gossip
    # may arrive before it, as in the daemon where a big tree takes a while to scan
    settle_delay: float = 0.001
    scheduler: dict = field(default_factory=dict)  # transfer.Scheduler options (its defaults)
    redial: tuple[float, float] = (session.RETRY_FIRST, session.RETRY_CAP)
    power_cut: bool = True  # a machine crash drops unsynced disk changes (memdisk.power_cut)
    power_keep: float = 0.5  # the chance an unsynced change reached the disk anyway
    rescan_delay: tuple[float, float] = (0.0, 0.0)  # restart: when the scan reaches offline edits


def topology_edges(n: int, spec: str, rng: random.Random) -> list[tuple[int, int]]:
    """The links of a mesh of `n` nodes: `full`, `ring`, `star` or `random:K` (connected)."""
    edges: set[tuple[int, int]] = set()
    if spec == "full":
        edges = {(a, b) for a in range(n) for b in range(a + 1, n)}
    elif spec == "ring":
        edges = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n) if n > 1}
    elif spec == "star":
        edges = {(0, i) for i in range(1, n)}
    elif spec.startswith("random:"):
        k = min(int(spec.split(":", 1)[1]), n - 1)
        for a in range(n):
            for b in rng.sample([x for x in range(n) if x != a], k):
                edges.add((min(a, b), max(a, b)))
        edges |= _join_components(n, edges)
    else:
        raise ValueError(f"unknown topology {spec!r} (full, ring, star, random:K)")
    return sorted(e for e in edges if e[0] != e[1])


def _join_components(n: int, edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    roots = sorted({find(x) for x in range(n)})
    return {(min(roots[0], r), max(roots[0], r)) for r in roots[1:]}


def clone_map(template: MetaMap, verify: Callable) -> MetaMap:
    """An independent MetaMap equal to `template`, checking signatures with `verify`
    (`MetaMap.clone`: logs shared until written, so a node costs what it changes)."""
    return template.clone(verify)


class Cluster:
    """The simulated mesh (see the module docstring)."""

    def __init__(self, cfg: ClusterConfig, *, trace: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.loop = EventLoop()
        self._trace = hashlib.blake2b(digest_size=16)
        self.trace_file = trace
        self.net = SimNet(self.loop, self.rng, on_packet=self._on_packet)
        self.oracle = Oracle()
        self.restores: dict[str, int] = {}  # restores that landed (`restore`), by source
        self.restore_errors: dict[str, int] = {}  # refused or failed ones, by their first words
        self.started = False
        self.ignore_root = Path("/nonexistent-simulated-root")
        self.mesh_secret = self.rng.randbytes(32)
        identities = [self._identity() for _ in range(cfg.nodes)]
        self.founder = identities[0].public
        self.mesh_id = mesh_id_of(self.mesh_secret, NodeId(self.founder))
        ro = set(self.rng.sample(range(1, cfg.nodes), min(cfg.read_only, cfg.nodes - 1)))
        grants = [make_update(identities[0], self.mesh_id, i + 1,
                              Grant(ident.public, f"n{i}", i in ro, i + 1))
                  for i, ident in enumerate(identities)]
        self._template = MetaMap(self.founder, Verifier(self.mesh_id))
        self._template.apply_all(grants)
        base = tuple(grants)
        self.nodes: list[SimNode] = [
            SimNode(self, i, ident, read_only=i in ro, store=SimStore(base))
            for i, ident in enumerate(identities)]
        self.by_key = {n.key: n.index for n in self.nodes}
        self.edges: set[tuple[int, int]] = set()  # (a, b), a < b: both ends dial
        self.neighbours: dict[int, set[int]] = {i: set() for i in range(cfg.nodes)}
        for a, b in topology_edges(cfg.nodes, cfg.topology, self.rng):
            self.add_edge(a, b)
        self.evil: set[int] = set()
        # the dialers' state, per (dialing node, dialed node)
        self._backoff: dict[tuple[int, int], float] = {}
        self._dialing: set[tuple[int, int]] = set()
        self._redial_timer: dict[tuple[int, int], Any] = {}
        # convergence watch
        self.fp: dict[int, bytes] = {}
        self.fp_count: Counter = Counter()
        self.history: dict[int, list[tuple[float, bytes]]] = {}
        self._dirty: dict[int, SimNode] = {}
        self.last_write_at: float | None = None
        self.sessions = 0
        self.on_session: Callable[[SimNode, int], None] | None = None  # after each connect
        self.offline: dict[int, dict[str, Any]] = {}  # stopped node -> path -> pre-edit state
        self.power_cuts = 0
        self.scan_due: dict[int, float] = {}  # node -> when its scan reaches its offline edits
        self.disk_full = 0  # user writes refused for want of space

    # -- building ----------------------------------------------------------------------------
    def _identity(self) -> Identity:
        return Identity.from_seed(self.rng.randbytes(32))

    def clock_ns(self) -> int:
        """Now as Unix nanoseconds: what a node's clock says (for mtimes)."""
        return EPOCH_NS + int(self.loop.now * 1e9)

    def link_spec(self) -> LinkSpec:
        cfg, rng = self.cfg, self.rng
        latency = rng.uniform(*cfg.latency)
        return LinkSpec(latency=latency, jitter=latency * cfg.jitter,
                        bandwidth=rng.uniform(*cfg.bandwidth), loss=cfg.loss,
                        duplicate=cfg.duplicate, reorder=cfg.reorder, reliable=cfg.reliable)

    def add_edge(self, a: int, b: int, *, spec: LinkSpec | None = None) -> None:
        key = (min(a, b), max(a, b))
        if key in self.edges or a == b:
            return
        self.edges.add(key)
        self.neighbours[a].add(b)
        self.neighbours[b].add(a)
        self.net.set_link(a, b, spec or self.link_spec())
        if self.started:
            self.ensure_link(a, b)
            self.ensure_link(b, a)

    def start(self) -> None:
        """Boot every node and start dialling."""
        self.started = True
        for node in self.nodes:
            node.boot(clone_map(self._template, Verifier(self.mesh_id)))
        for a, b in sorted(self.edges):  # the daemons start within half a second of each other
            for dialer, other in ((a, b), (b, a)):
                self._schedule_dial((dialer, other), self.rng.uniform(0.0, 0.5)
                                    + self._first_delay(dialer, other))

    # -- the dialer --------------------------------------------------------------------------
    def _first_delay(self, dialer: int, other: int) -> float:
        return session.first_dial_delay(self.nodes[dialer].key, self.nodes[other].key)

    def ensure_link(self, a: int, b: int) -> None:
        """Node `a` (re)started or gained the link to `b`: its dialer starts afresh, as a new
        daemon's does (the other end keeps its own back-off)."""
        if (min(a, b), max(a, b)) in self.edges:
            self._backoff.pop((a, b), None)
            self._schedule_dial((a, b), self._first_delay(a, b), replace=True)

    def link_down(self, a: int, b: int, *, error: bool) -> None:
        """Node `a`'s connection to `b` ended: `a` redials after the base delay (runtime.dial
        does the same whatever the reason: a peer that misbehaves is dropped, not banned)."""
        if (min(a, b), max(a, b)) not in self.edges:
            return
        self._backoff[(a, b)] = self.cfg.redial[0]  # as runtime.dial: a link that worked
        self._schedule_dial((a, b), session.jittered(self.cfg.redial[0], self.rng.uniform))

    def _schedule_dial(self, key: tuple[int, int], delay: float, replace: bool = False) -> None:
        timer = self._redial_timer.get(key)
        if timer is not None and not timer.cancelled:
            if not replace:
                return
            timer.cancel()
        self._redial_timer[key] = self.loop.call_later(delay, self.dial, key)

    def dial(self, key: tuple[int, int]) -> None:
        """Node key[0] dials key[1] (unless it is down, or already connected or dialing)."""
        self._redial_timer.pop(key, None)
        dialer, other = key
        a, b = self.nodes[dialer], self.nodes[other]
        if not (a.alive and not b.gone) or other in a.conns or a.is_opening(other) or key in self._dialing:
            return
        if not a.trusts(b.key):
            self._retry(key)
            return
        self._dialing.add(key)

        def established(conn) -> None:
            self._dialing.discard(key)
            if not a.alive or not a.trusts(b.key):
                self.net.close(conn, dialer, "not trusted")
                self._retry(key)
                return
            self._backoff.pop(key, None)
            a.open(conn, other, dialed=True)
            self.changed(a)

        def failed(why: str) -> None:
            self._dialing.discard(key)
            self._retry(key)

        self.net.dial(dialer, other, a, lambda conn: self.nodes[other].accept(conn, dialer),
                      established, failed)

    def _retry(self, key: tuple[int, int]) -> None:
        back = session.next_retry(self._backoff.get(key), *self.cfg.redial)
        self._backoff[key] = back
        self._schedule_dial(key, session.jittered(back, self.rng.uniform))

    def session_started(self, node: SimNode, peer: int) -> None:
        self.sessions += 1
        if self.on_session is not None:
            self.on_session(node, peer)

    def make_evil(self, i: int, cls: type) -> SimNode:
        """Turn node `i` into an instance of `cls` (a SimNode subclass that misbehaves); it is
        left out of convergence and of the invariants' honest set."""
        node = self.nodes[i]
        node.__class__ = cls
        self.evil.add(i)
        self._untrack(i)
        return node

    # -- what users and operators do ---------------------------------------------------------
    def at(self, t: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Schedule an action (a write, a crash...) at simulated time `t`."""
        self.loop.call_at(t, lambda: fn(*args, **kwargs))

    def content(self, size: int) -> bytes:
        """Unique bytes for a new write: a counter, then `size` bytes from the seed."""
        tag = b"write-%d-" % len(self.oracle.writes)
        return tag + self.rng.randbytes(max(0, size - len(tag)))

    def write(self, i: int, path: str, data: bytes | None = None, *,
              size: int = 4096) -> Write | None:
        """The user of node `i` writes `path` (while the node runs or not). None: the disk was
        full (`set_quota`), the write failed and nothing changed."""
        node = self.nodes[i]
        data = self.content(size) if data is None else data
        previous = node.disk.read(path)
        mtime = self.clock_ns()
        state = self._before_offline_edit(node, path)
        try:
            node.disk.write(path, data, mtime_ns=mtime)
        except DiskFull:
            self.disk_full += 1
            self.note(f"write {i} {path} {len(data)}: disk full")
            return None
        self._offline_edit(node, path, state)
        w = self.oracle.user_write(i, node.key, path, data, mtime, self.loop.now, previous,
                                   hash_bytes(data)[0])
        self.note(f"write {i} {path} {len(data)}")
        if i not in self.evil:
            self.last_write_at = self.loop.now
        node.user_changed(path)
        self.changed(node)
        return w

    def edit(self, i: int, path: str, *, size: int = 4096, change: int = 64) -> Write | None:
        """The user of node `i` changes a few bytes of `path` in place (an edited line: the rest
        stays, so the new version crosses the wire as deltas); a path that holds no file yet is
        written whole (`size` bytes)."""
        old = self.nodes[i].disk.read(path)
        if not old:
            return self.write(i, path, size=size)
        new = self.content(change)
        at = self.rng.randrange(len(old) + 1)
        cut = self.rng.randrange(min(change, len(old) - at) + 1)
        return self.write(i, path, old[:at] + new + old[at + cut:])

    def delete(self, i: int, path: str) -> Write | None:
        node = self.nodes[i]
        previous = node.disk.read(path)
        if not node.disk.exists(path):
            return None
        self._offline_edit(node, path, self._before_offline_edit(node, path))
        node.disk.delete(path)
        w = self.oracle.user_write(i, node.key, path, None, self.clock_ns(), self.loop.now,
                                   previous)
        self.note(f"delete {i} {path}")
        if i not in self.evil:
            self.last_write_at = self.loop.now
        node.user_changed(path)
        self.changed(node)
        return w

    def restore(self, i: int, path: str, version: str | None = None) -> None:
        """The user of running node `i` runs `backer restore PATH [--version V]`: it asks the
        mesh, then brings the version back as a new change (a user write for the oracle, over
        what the disk held then). Refusals and failures are counted in `restore_errors`."""
        node = self.nodes[i]
        if not node.alive:
            return

        def ended(error, restored) -> None:
            if error is not None:
                self.restore_errors[error.split(":")[0]] = self.restore_errors.get(
                    error.split(":")[0], 0) + 1
                self.note(f"restore {i} {path}: {error}")
                return
            self.restores[restored.source] = self.restores.get(restored.source, 0) + 1
            self.oracle.user_write(i, node.key, path, restored.data, restored.mtime_ns,
                                   self.loop.now, restored.previous, restored.version.hash)
            self.note(f"restore {i} {path} {restored.version.id}")
            self.last_write_at = self.loop.now
            node.user_changed(path)
            self.changed(node)
        node.history.restore(path, version, ended)

    def crash(self, i: int, *, machine: bool = False) -> None:
        """The node's process dies (peers get a reset), or its machine (silence, and a power cut
        of its disk: see the module docstring)."""
        node = self.nodes[i]
        if not node.alive:
            return
        self.note(f"crash {i} {'machine' if machine else 'process'}")
        if machine:
            self.net.set_up(i, False)
            node.store.machine_boot += 1  # it comes back after a reboot
            if self.cfg.power_cut:
                self._power_cut(node)
        node.crash(notify=not machine)
        self.offline.setdefault(i, {})
        self._untrack(i)

    def _power_cut(self, node: SimNode) -> None:
        if not node.disk.unsynced():
            return
        held = self.held_elsewhere(node.index)
        cut = node.disk.power_cut(self.rng, keep=self.cfg.power_keep)
        self.power_cuts += 1
        after = {content_id(d) for d in map(node.disk.read, node.disk.paths()) if d}
        gone = {content_id(c.before) for c in cut if c.before} - after
        lost = self.oracle.power_cut(node.index, gone, held)
        self.note(f"power cut {node.index}: {len(cut)} files changed, {len(lost)} writes lost")

    def _before_offline_edit(self, node: SimNode, path: str) -> Any:
        """The pre-edit state of `path` if `node` is stopped and this is its first edit there."""
        edits = self.offline.get(node.index)
        if edits is None or node.alive or path in edits:
            return None
        return node.disk.state(path)

    def _offline_edit(self, node: SimNode, path: str, state: Any) -> None:
        edits = self.offline.get(node.index)
        if edits is not None and not node.alive and path not in edits:
            edits[path] = state

    def restart(self, i: int) -> None:
        """Boot node `i` again; with `cfg.rescan_delay`, its scan reaches the edits made while it
        was stopped only after a seeded delay (see the module docstring)."""
        node = self.nodes[i]
        if node.alive or node.gone:
            return
        self.note(f"restart {i}")
        self.net.set_up(i, True)
        self.scan_due.pop(i, None)
        edits = self.offline.pop(i, {})
        lo, hi = self.cfg.rescan_delay
        if edits and hi > 0:
            delay = self.rng.uniform(lo, hi)
            node.boot(first_scan=delay)
            self.note(f"restart {i}: the scan reaches {len(edits)} offline edits in {delay:.3f} s")
            self.scan_due[i] = self.loop.now + delay
        else:
            node.boot()
        if node.claim is not None:
            node.claim.resume()
        for j in sorted(self.neighbours[i]):
            self.ensure_link(i, j)

    # -- disk faults -------------------------------------------------------------------------
    def vanish_root(self, i: int) -> None:
        """Node `i`'s root disappears (an unmounted disk); the watcher reports it."""
        self.note(f"vanish root {i}")
        self.nodes[i].disk.vanish()
        self._root_event(i)

    def empty_root(self, i: int) -> None:
        """Node `i`'s root shows an empty mount point; the watcher reports it."""
        self.note(f"empty root {i}")
        self.nodes[i].disk.empty()
        self._root_event(i)

    def restore_root(self, i: int) -> None:
        self.note(f"restore root {i}")
        self.nodes[i].disk.restore()
        self._root_event(i)

    def _root_event(self, i: int) -> None:
        node = self.nodes[i]
        node.user_changed("")  # a full rescan
        self.changed(node)

    def set_quota(self, i: int, quota: int | None) -> None:
        """Node `i`'s disk holds at most `quota` bytes from now on (None: unlimited)."""
        self.note(f"quota {i} {quota}")
        self.nodes[i].disk.quota = quota

    def invite(self, granter: int, *, read_only: bool = False,
               expires: float = 7 * 86400.0) -> Identity:
        """`backer invite` on node `granter`: the invite key the joining node proves."""
        key = self._identity()
        self.nodes[granter].store.invites.create(key.public, read_only,
                                                 self.clock_ns() / 1e9 + expires)
        return key

    def join(self, granter: int, *, links: int = 3, read_only: bool = False,
             invite: Identity | None = None, forge: bool = False) -> int:
        """A new node joins through `granter` with an invite (a new one unless given): it claims
        it over the simulated wire, and dials in; the grant reaches the mesh by gossip."""
        g = self.nodes[granter]
        invite = invite or self.invite(granter, read_only=read_only)
        ident = self._identity()
        i = len(self.nodes)
        node = SimNode(self, i, ident, read_only=read_only, bootstrap=[g.key])
        self.nodes.append(node)
        self.by_key[node.key] = i
        self.neighbours[i] = set()
        self.note(f"join {i} via {granter}")
        node.boot()
        node.claim = Claim(node, granter, invite, forge=forge)
        node.claim.start()
        self.add_edge(i, granter)
        live = [j for j in range(i) if self.nodes[j].alive and j != granter and j not in self.evil]
        for j in self.rng.sample(live, min(links, len(live))):
            self.add_edge(i, j)
        return i

    def leave(self, i: int, remover: int) -> None:
        """Node `i` goes away for good and `remover` revokes it (`backer remove-peer`)."""
        node, r = self.nodes[i], self.nodes[remover]
        self.note(f"leave {i} removed by {remover}")
        self.oracle.author_leaves(node.key, self.held_elsewhere(i))
        if node.alive:
            node.crash()
        node.gone = True
        self._untrack(i)
        r.publish(Revoke(node.key, r.metamap.seq_of(node.key), r.metamap.clock + 1))

    def held_elsewhere(self, i: int) -> set[bytes]:
        """Content ids (oracle.content_id) on the disks or archives of live nodes but `i`."""
        held: set[bytes] = set()
        for other in self.nodes:
            if other.alive and other.index != i:
                held.update(content_id(d) for d in map(other.disk.read, other.disk.paths()) if d)
                held.update(content_id(d) for d in other.disk.objects.values())
        return held

    def unique_writes(self, i: int) -> int:
        """How many of `i`'s current contents no other live node holds (what leaving would lose)."""
        node, held = self.nodes[i], self.held_elsewhere(i)
        mine = {content_id(d) for d in map(node.disk.read, node.disk.paths()) if d}
        return sum(1 for w in self.oracle.writes
                   if w.author == node.key and w.content in mine and w.content not in held)

    def partition(self, sides: dict[int, int], start: float, end: float | None) -> None:
        self.note(f"partition {start} {end}")
        self.net.partition(sides, start, end)

    def note(self, text: str) -> None:
        """Put an action in the trace."""
        line = f"{self.loop.now:.6f} {text}"
        self._trace.update(line.encode())
        if self.trace_file is not None:
            self.trace_file.write(line + "\n")

    def _on_packet(self, t: float, src: int, dst: int, kind: str, data: bytes) -> None:
        self._trace.update(struct.pack("<dIII", t, src, dst, len(data)))
        self._trace.update(data)
        if self.trace_file is not None:
            self.trace_file.write(f"{t:.6f} {src}->{dst} {kind} {len(data)}\n")

    @property
    def trace_hash(self) -> str:
        return self._trace.hexdigest()

    # -- running -----------------------------------------------------------------------------
    def run_until(self, t: float, *, stop_when_settled: bool = False) -> bool:
        """Advance to time `t`; with `stop_when_settled`, stop as soon as every live node holds
        the same state and has nothing left to do. Returns True if it stopped early."""
        if not self.started:
            self.start()
        state = {"checked": -1.0}

        def after() -> bool:
            changed = self._flush()
            if not stop_when_settled or len(self.fp_count) != 1:
                return False
            now = self.loop.now
            if not changed and now - state["checked"] < 1.0:
                return False
            state["checked"] = now
            return self.settled()

        stopped = self.loop.run_until(t, after)
        self._flush()
        return stopped

    def settled(self) -> bool:
        """Every tracked node identical and idle."""
        self._flush()
        tracked = self.tracked()
        if not tracked or len(self.fp_count) != 1 or next(iter(self.fp_count.values())) != len(tracked):
            return False
        if not all(self.nodes[i].idle() for i in tracked):
            return False
        return not any(self._obtainable(self.nodes[i]) for i in tracked)

    def _obtainable(self, node: SimNode) -> bool:
        """Does `node` list as unavailable a version some live node holds? (It will fetch it
        once its back-off expires: the mesh has not settled yet.)"""
        listed = node.folder.machine.unavailable
        if not listed:
            return False
        held: set[bytes] = set()
        for n in self.nodes:
            if n.alive:
                held.update(e.hash for e in n.store.index.values() if e.hash is not None)
                held.update(n.disk.objects)
        return any(node.metamap.winner(p).hash in held for p in listed)

    # -- watching convergence ----------------------------------------------------------------
    def tracked(self) -> list[int]:
        """The nodes whose agreement defines convergence: live, honest, still members."""
        return [n.index for n in self.nodes if n.alive and not n.gone and n.index not in self.evil]

    def changed(self, node: SimNode) -> None:
        self._dirty[node.index] = node

    def _untrack(self, i: int) -> None:
        fp = self.fp.pop(i, None)
        if fp is not None:
            self.fp_count[fp] -= 1
            if not self.fp_count[fp]:
                del self.fp_count[fp]

    def fingerprint(self, node: SimNode) -> bytes:
        h = hashlib.blake2b(digest_hash(node.metamap.digest()), digest_size=16)
        h.update(node.disk.fingerprint())
        return h.digest()

    def _flush(self) -> bool:
        if not self._dirty:
            return False
        dirty, self._dirty = self._dirty, {}
        moved = False
        for i, node in dirty.items():
            if not node.alive or node.gone or i in self.evil:
                continue
            fp = self.fingerprint(node)
            old = self.fp.get(i)
            if fp == old:
                continue
            moved = True
            if old is not None:
                self._untrack(i)
            self.fp[i] = fp
            self.fp_count[fp] += 1
            self.history.setdefault(i, []).append((self.loop.now, fp))
        return moved

    def converged_at(self) -> float | None:
        """When the last tracked node reached the state all now share (None if they differ)."""
        tracked = self.tracked()
        if not tracked or len({self.fp.get(i) for i in tracked}) != 1:
            return None
        return max(self.history[i][-1][0] for i in tracked)

    def up_to_date_series(self) -> list[tuple[float, float]]:
        """(time, fraction of tracked nodes already in the final state), at every change."""
        tracked = self.tracked()
        if not tracked:
            return []
        final = self.fp.get(tracked[0])
        changes = []
        for i in tracked:
            state = False
            for t, fp in self.history.get(i, []):
                now_final = fp == final
                if now_final != state:
                    changes.append((t, 1 if now_final else -1))
                    state = now_final
        changes.sort()
        out, count = [(0.0, 0.0)], 0
        for t, d in changes:
            count += d
            out.append((t, count / len(tracked)))
        return out

    # -- numbers -----------------------------------------------------------------------------
    def node_bytes(self, kinds: tuple[str, ...] | None = None) -> dict[int, int]:
        """Bytes sent plus received per node (all, or of the given message kinds)."""
        net = self.net
        if kinds is None:
            return {i: net.bytes_out.get(i, 0) + net.bytes_in.get(i, 0)
                    for i in range(len(self.nodes))}
        out = {i: 0 for i in range(len(self.nodes))}
        for (host, kind), n in net.host_kind_bytes.items():
            if kind in kinds:
                out[host] += n
        return out
