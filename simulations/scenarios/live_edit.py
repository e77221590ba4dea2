"""Live notes edited everywhere at once (issue 12). Every node holds the same notes before they
become live (their text must not double when the documents meet); then `backer live *.md`, and
the users of all nodes edit the notes on disk at random moments: words inserted (some with
multi-byte characters) and struck out (replaced by "~"), while nodes go offline (cut off from all others) and the
mesh splits in two and heals. A new note is made live on one node midway. `kills` times, a node
is killed right after a peer's edit reached its document but before its file shows it, its user
edits that note while it is down, and it restarts (the three-way merge of protocol/live.py:
neither the peer's word nor the offline one may be lost).

Invariants, besides the simulator's own: every node's document of a note holds the same text,
every disk copy equals it, no conflict copy of a live note exists, and no edit is lost: every
word inserted and not removed by a user is in the final text, once."""

from __future__ import annotations

import re

from gossip_backer.core.paths import TMP_PREFIX
from gossip_backer.core.record import LiveGlob
from simulations import Plan

DEFAULTS = {"nodes": 4, "topology": "full", "duration": 30.0, "notes": 2, "rate": 0.6,
            "cuts": 3, "removes": 0.25, "kills": 1, "down": 2.0}
CHARS = ("", "é", "ж", "漢", "😀")


def configure(cfg, options: dict) -> None:
    cfg.latency = (0.005, 0.05)


def _notes(sim) -> list[str]:
    return sorted({p for n in sim.nodes for p in n.disk.paths()
                   if p.endswith(".md") and not p.rsplit("/", 1)[-1].startswith(TMP_PREFIX)})


def _edit(sim, i: int, state: dict, path: str | None = None) -> None:
    """The user of node `i` inserts a fresh word at a word boundary of a note, or removes one
    (given `path`: inserts one there)."""
    node, rng = sim.nodes[i], sim.rng
    notes = [p for p in _notes(sim) if node.disk.kind(p) == "file"]
    if not notes:
        return
    given = path in notes
    path = path if given else rng.choice(notes)
    text = node.disk.read(path).decode("utf-8")
    words = text.split(" ")
    present = [k for k, w in enumerate(words) if w != "~"]
    if not given and len(present) > 3 and rng.random() < state["removes"]:
        k = rng.choice(present)  # the word is struck out ("~"): whitespace stays unambiguous,
        state["removed"].update(_words(words[k].encode()))  # so inserted words do not glue
        # (a strike and an insert at one place may still touch: "w1~"; the user removes both)
        words[k] = "~"
    else:
        state["count"] += 1
        word = f"w{state['count']}{rng.choice(CHARS)}n{i}"
        state["inserted"][word] = path
        words.insert(rng.randrange(len(words) + 1), word)
    node.disk.write(path, " ".join(words).encode("utf-8"), mtime_ns=sim.clock_ns())
    node.user_changed(path)


def _unwritten(node) -> list[str]:
    """Notes whose document holds edits the node's file does not show yet."""
    live = node.folder.machine.live if node.alive and node.folder is not None else None
    if live is None:
        return []
    return sorted(p for p, doc in live.docs.items()
                  if node.disk.kind(p) == "file" and node.disk.read(p) != doc.data())


def _kill(sim, i: int, state: dict, until: float, down: float) -> None:
    """Kill node `i` as soon as a peer's edit waits for its file (or at `until` anyway); its
    user edits that note while it is down; it restarts `down` seconds later."""
    node = sim.nodes[i]
    if not node.alive:
        return
    waiting = _unwritten(node)
    if not waiting and sim.loop.now < until:
        sim.at(sim.loop.now + 0.001, _kill, sim, i, state, until, down)
        return
    sim.note(f"kill {i} with unwritten edits of {waiting}")
    sim.crash(i)
    sim.at(sim.loop.now + down / 2, _edit, sim, i, state, *waiting[:1])
    sim.at(sim.loop.now + down, sim.restart, i)


def _new_note(sim, i: int, path: str, state: dict) -> None:
    word = f"fresh{i}"
    state["inserted"][word] = path
    sim.nodes[i].disk.write(path, f"{word} note".encode(), mtime_ns=sim.clock_ns())
    sim.nodes[i].user_changed(path)


def _words(data: bytes) -> list[str]:
    """The words of a note: what lies between spaces and strike-outs."""
    return re.findall(r"[^ ~]+", data.decode("utf-8"))


def _docs(sim, path: str) -> list[bytes | None]:
    out = []
    for i in sim.tracked():
        doc = sim.nodes[i].folder.machine.live.docs.get(path)
        out.append(None if doc is None else doc.data())
    return out


def _checks(sim, state: dict) -> dict:
    def identical() -> bool:
        return all(len(set(_docs(sim, p))) == 1 and None not in _docs(sim, p) for p in _notes(sim))

    def disks() -> bool:
        return all(sim.nodes[i].disk.read(p) == sim.nodes[i].folder.machine.live.docs[p].data()
                   for p in _notes(sim) for i in sim.tracked())

    def no_conflict_copy() -> bool:
        return not any("sync-conflict" in p for i in sim.tracked() for p in sim.nodes[i].disk.paths())

    def no_edit_lost() -> bool:
        first = sim.nodes[sim.tracked()[0]]
        for word, path in state["inserted"].items():
            if any(word in gone for gone in state["removed"]):  # a user struck it out, maybe
                continue  # glued to a neighbour (two inserts at one place, see the README)
            words = _words(first.disk.read(path))
            if words.count(word) != 1 and not any(word in w and w != word for w in words):
                return False  # (glued to a neighbour, its characters are all there: see README)
        return True

    def seeds_not_doubled() -> bool:
        first = sim.nodes[sim.tracked()[0]]
        return all(_words(first.disk.read(p)).count(word) <= 1
                   for k, p in enumerate(state["seeded"]) for word in (f"base{k}", "alpha", "gamma"))

    return {"live_documents_identical": identical, "live_disk_equals_document": disks,
            "live_no_conflict_copy": no_conflict_copy, "live_no_edit_lost": no_edit_lost,
            "live_seed_not_doubled": seeds_not_doubled}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    n = len(sim.nodes)
    state = {"count": 0, "inserted": {}, "removed": set(), "removes": float(options["removes"]),
             "seeded": [f"note{k}.md" for k in range(int(options["notes"]))]}
    for k, path in enumerate(state["seeded"]):  # the same note on every node before it is live
        data = f"base{k} alpha beta gamma".encode()
        for node in sim.nodes:
            node.disk.write(path, data, mtime_ns=10**18 + k)
    sim.at(3.0, lambda: sim.nodes[0].publish(LiveGlob("*.md", True, sim.nodes[0].metamap.clock + 1)))
    duration = float(options["duration"])
    for i in range(n):
        t = 5.0
        while True:
            t += rng.expovariate(float(options["rate"]))
            if t >= duration:
                break
            sim.at(t, _edit, sim, i, state)
    sim.at(duration / 2, _new_note, sim, rng.randrange(n), "later.md", state)
    span = (duration - 6.0) / max(1, int(options["cuts"]))
    for c in range(int(options["cuts"])):
        start = 6.0 + c * span + rng.uniform(0, span / 4)
        end = start + rng.uniform(span / 3, span * 0.7)
        if rng.random() < 0.5:  # one node offline
            alone = rng.randrange(n)
            sim.partition({i: int(i == alone) for i in range(n)}, start, end)
        else:  # the mesh split in two
            sides = {i: rng.randrange(2) for i in range(n)}
            sim.partition(sides, start, end)
    for _ in range(int(options["kills"])):
        t = rng.uniform(6.0, duration - 3.0)
        sim.at(t, _kill, sim, rng.randrange(n), state, t + 3.0, float(options["down"]))
    return Plan(until=duration, settle=120.0, since=duration, checks=_checks(sim, state))
