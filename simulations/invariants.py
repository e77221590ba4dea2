"""What must hold at the end of every simulated run, over the live honest nodes.

- identical_metadata: the same digest, file versions and member table on every node.
- identical_contents: the same disk on every node (paths, kinds, bytes, modes, mtimes, targets).
- contents_match_metadata: each disk holds exactly what its map's winners say (nothing else but
  temporary files), so agreement is not agreement on a stale disk.
- same_conflict_winner: every path's winner is the same everywhere, and every loser with content
  of its own has its conflict copy, with the loser's bytes, on every disk.
- no_lost_writes: each user write is on every node, at its path or as its conflict copy, unless a
  user knowingly replaced it, or a power cut took it before the mesh held it (testing/oracle.py).
- nothing_forbidden_applied: no content written by a read-only, revoked or not-yet-member node is
  on any disk or a version in any map, and every update held anywhere carries a valid signature.
- bandwidth_respected: no link carried more than its bandwidth (simnet's meter).
"""

from __future__ import annotations

import posixpath

from collections.abc import Iterable

from gossip_backer.core import blocks as coreblocks
from gossip_backer.core.conflict import conflict_copy, conflict_name, losers
from gossip_backer.core.membership import Verdict
from gossip_backer.core.paths import TMP_PREFIX
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord
from gossip_backer.crypto.identity import Verifier
from gossip_backer.testing.cluster import Cluster
from gossip_backer.testing.node import SimNode
from gossip_backer.testing.oracle import Write, content_id

__all__ = ["check", "lost_writes", "NAMES"]

NAMES = ("identical_metadata", "identical_contents", "contents_match_metadata",
         "same_conflict_winner", "no_lost_writes", "nothing_forbidden_applied",
         "bandwidth_respected")


def _members(node: SimNode) -> dict:
    return {k: (m.read_only, m.revoked, m.cutoff)
            for k, m in node.metamap.membership.members.items()}


def _live(node: SimNode, path: str) -> bool:
    live = node.folder.machine.live if node.folder is not None else None
    return live is not None and live.owns(path)


def identical_metadata(nodes: list[SimNode]) -> bool:
    first = nodes[0].metamap
    ref = (first.digest(), first.files, _members(nodes[0]))
    return all((n.metamap.digest(), n.metamap.files, _members(n)) == ref for n in nodes[1:])


def identical_contents(nodes: list[SimNode]) -> bool:
    return len({n.disk.fingerprint() for n in nodes}) == 1


def _disk_holds(node: SimNode, rec: FileRecord) -> bool:
    disk = node.disk
    kind = disk.kind(rec.path)
    if rec.deleted:
        return kind is None
    if kind != rec.kind:
        return False
    if rec.kind == FILE:
        data = disk.read(rec.path)
        return (coreblocks.hash_bytes(data)[0] == rec.hash and len(data) == rec.size
                and disk.mode(rec.path) & 0o777 == rec.mode & 0o777)
    if rec.kind == SYMLINK:
        return disk.target(rec.path) == rec.target
    return rec.kind == DIR


def contents_match_metadata(nodes: list[SimNode], unobtainable: Iterable[str] = ()) -> bool:
    """Every winner on every disk, but for `unobtainable` paths (no live node holds their
    content: SPEC's unavailable versions, which the node lists and keeps what it has)."""
    skip = set(unobtainable)
    for node in nodes:
        files = node.metamap.files
        for path in files:
            if path in skip or _live(node, path):
                continue  # a live file's disk follows its document (live_edit's invariants)
            if not _disk_holds(node, node.metamap.winner(path)):
                return False
        for path in node.disk.paths():
            if path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue
            w = node.metamap.winner(path)
            if w is None or w.deleted:
                return False
    return True


def same_conflict_winner(nodes: list[SimNode], unobtainable: set[bytes] = frozenset()) -> bool:
    """One winner everywhere, and every loser's copy (at its name, or at the suffixed one when
    that was taken) on every disk, but for content no live node holds."""
    ref = nodes[0].metamap
    for path, versions in ref.files.items():
        if len(versions) < 2 or _live(nodes[0], path):
            continue  # a live file's concurrent versions make no conflict copy
        w = ref.winner(path)
        for node in nodes:
            if node.metamap.winner(path) != w:
                return False
            for loser in losers(versions):
                if loser.kind != FILE:
                    continue
                names = [conflict_copy(loser, suffixed).path for suffixed in (False, True)]
                copies = [c for c in map(node.metamap.winner, names) if c is not None
                          and c.hash == loser.hash and _disk_holds(node, c)]
                if not copies and loser.hash not in unobtainable:
                    return False
    return True


def _write_valid(w: Write, members: dict) -> bool:
    """Was the author entitled to this write (a read-write member, within any cutoff)?"""
    m = members.get(w.author)
    if m is None or m.read_only:
        return False
    return all(seq <= m.cutoff for _origin, seq in w.updates)


def lost_writes(sim: Cluster, nodes: list[SimNode]) -> list[Write]:
    members = nodes[0].metamap.membership.members
    gone = {n.key for n in sim.nodes if n.gone}
    valid = {w.id for w in sim.oracle.writes if _write_valid(w, members)
             and (w.updates or w.author not in gone)}
    replaced = sim.oracle.superseded(valid)
    lost = []
    for w in sim.oracle.writes:
        if (w.content is None or w.id not in valid or w.id in replaced or w.left_alone
                or w.power_lost):
            continue
        copy = conflict_name(w.path, w.mtime_ns, w.author)
        ext = posixpath.splitext(posixpath.basename(w.path))[1]
        suffixed = copy[:len(copy) - len(ext)] + "-"  # SPEC: ...-NODEID7-SUFFIX.EXT when taken
        for node in nodes:
            places = [w.path, copy] + [p for p in node.disk.paths()
                                       if p.startswith(suffixed) and p.endswith(ext)]
            if not any(_holds(node, p, w.content) for p in places):
                lost.append(w)
                break
    return lost


def _holds(node: SimNode, path: str, cid: bytes) -> bool:
    data = node.disk.read(path)
    return data is not None and content_id(data) == cid


def _forbidden(sim: Cluster, nodes: list[SimNode]) -> list[Write]:
    members = nodes[0].metamap.membership.members
    return [w for w in sim.oracle.writes if w.content is not None and not _write_valid(w, members)]


def nothing_forbidden_applied(sim: Cluster, nodes: list[SimNode]) -> bool:
    bad = {w.content for w in _forbidden(sim, nodes)}
    bad_hashes = {w.core_hash for w in _forbidden(sim, nodes)}
    verifier, checked = Verifier(sim.mesh_id), {}
    for node in nodes:
        for path in node.disk.paths():
            data = node.disk.read(path)
            if data is not None and content_id(data) in bad:
                return False
        membership, valid = node.metamap.membership, set()
        for update in node.metamap.updates():
            key = (update.origin, update.seq, update.body, update.sig)
            if key not in checked:
                checked[key] = verifier(update)
            if not checked[key]:
                return False
            if isinstance(update.payload, FileRecord) and membership.verdict(
                    update.origin, update.seq, update.payload) is Verdict.OK:
                valid.add(update.payload)
        for versions in node.metamap.files.values():
            for v in versions:
                if v.hash in bad_hashes or v not in valid:
                    return False
    return True


def _held(sim: Cluster) -> set[bytes]:
    held: set[bytes] = set()
    for n in sim.nodes:
        if n.alive:
            held.update(e.hash for e in n.store.index.values() if e.hash is not None)
            held.update(n.disk.objects)
    return held


def _unheld(sim: Cluster) -> set[bytes]:
    """Hashes of versions in the maps that no live node holds."""
    held = _held(sim)
    return {v.hash for n in sim.nodes if n.alive for vs in n.metamap.files.values() for v in vs
            if v.hash is not None and v.hash not in held}


def unavailable(sim: Cluster) -> list[str]:
    """Paths whose winning content no live node holds (on disk or in its archive): a
    version nobody can ever fetch."""
    nodes = [n for n in sim.nodes if n.alive]
    held: set[bytes] = set()
    for n in nodes:
        held.update(e.hash for e in n.store.index.values() if e.hash is not None)
        held.update(n.disk.objects)
    out = set()
    for n in nodes:
        if n.index in sim.evil:
            continue
        for path, versions in n.metamap.files.items():
            w = n.metamap.winner(path)
            if w.kind == FILE and not w.deleted and w.size and w.hash not in held:
                out.add(path)
    return sorted(out)


def check(sim: Cluster, nodes: Iterable[SimNode] | None = None) -> tuple[dict[str, bool], list[Write]]:
    """Every invariant by name, and the lost writes."""
    nodes = [sim.nodes[i] for i in sim.tracked()] if nodes is None else list(nodes)
    if not nodes:
        return {name: False for name in NAMES}, []
    lost = lost_writes(sim, nodes)
    result = {
        "identical_metadata": identical_metadata(nodes),
        "identical_contents": identical_contents(nodes),
        "contents_match_metadata": contents_match_metadata(nodes, unavailable(sim)),
        "same_conflict_winner": same_conflict_winner(nodes, _unheld(sim)),
        "no_lost_writes": not lost,
        "nothing_forbidden_applied": nothing_forbidden_applied(sim, nodes),
        "bandwidth_respected": sim.net.bandwidth_ok(),
    }
    return result, lost
