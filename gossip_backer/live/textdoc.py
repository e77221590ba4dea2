"""One live file's text as a pycrdt (Yrs) document: its text is `doc.get("text", type=Text)`,
the same as `ydoc.getText("text")` of a Yjs client.

This is the only place that touches pycrdt's document. The decisions about documents (which
update to publish, when to write the disk) are protocol/live.py's; it holds these objects through
the small `TextDocLike` interface, so the daemon and the simulator run the same code.

Seeding: when a file becomes live, its content is inserted by a fixed writer whose client id is
derived from the content itself. Nodes that seed the same bytes make the same update (same
client, same clocks, same text), so when their documents meet the text is there once.
"""

from __future__ import annotations

import hashlib


from gossip_backer.live import textdiff

LIVE_MAX = 10 * 1024 * 1024  # bytes: a bigger file is mirrored as a plain file


def eligible(data: bytes) -> str | None:
    """Why `data` cannot be a live document (None: it can)."""
    if len(data) > LIVE_MAX:
        return f"larger than {LIVE_MAX // (1024 * 1024)} MiB"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def seed_client(data: bytes) -> int:
    """The client id of the seeding writer of `data`: the same for the same bytes."""
    return int.from_bytes(hashlib.sha256(b"backer-seed\0" + data).digest()[:4], "big") | 1


class TextDoc:
    """A Yjs document holding one text, edited by the node (`client_id`) and its clients."""

    def __init__(self, client_id: int) -> None:
        from pycrdt import Doc, Text  # (here: a node without live files never loads it, ~5 MB)

        self.doc = Doc(client_id=client_id)
        self.text = self.doc.get("text", type=Text)

    @staticmethod
    def seed(data: bytes) -> bytes:
        """The update that inserts `data` as the deterministic seeding writer."""
        from pycrdt import Doc, Text

        doc = Doc(client_id=seed_client(data))
        text = doc.get("text", type=Text)
        if data:
            text.insert(0, data.decode("utf-8"))
        return doc.get_update()

    def apply(self, update: bytes) -> None:
        """Merge an update from anywhere (idempotent, any order)."""
        self.doc.apply_update(update)

    def data(self) -> bytes:
        return str(self.text).encode("utf-8")

    def state(self) -> bytes:
        return self.doc.get_state()

    def update_since(self, state: bytes | None = None) -> bytes:
        """What a holder of `state` (None: nothing) lacks; the whole state as one update."""
        return self.doc.get_update(state) if state is not None else self.doc.get_update()

    def distance(self, new: bytes) -> int:
        """How many bytes the smallest edit from this text to `new` deletes and inserts."""
        splices = textdiff.diff(self.data(), new)
        return sum(s.delete + len(s.insert.encode("utf-8")) for s in splices)

    def edit_to(self, new: bytes) -> bytes | None:
        """Make the text `new` by the smallest edit; the update it made (None: no change)."""
        splices = textdiff.diff(self.data(), new)
        if not splices:
            return None
        before = self.doc.get_state()
        with self.doc.transaction():
            for s in reversed(splices):
                if s.delete:
                    del self.text[s.at:s.at + s.delete]
                if s.insert:
                    self.text.insert(s.at, s.insert)
        return self.doc.get_update(before)


class TextDocs:
    """The factory protocol/live.py is given: documents and seeds."""

    max_bytes = LIVE_MAX

    @staticmethod
    def new(client_id: int) -> TextDoc:
        return TextDoc(client_id)

    @staticmethod
    def seed(data: bytes) -> bytes:
        return TextDoc.seed(data)

    @staticmethod
    def eligible(data: bytes) -> str | None:
        return eligible(data)


__all__ = ["TextDoc", "TextDocs", "eligible", "seed_client", "LIVE_MAX"]
