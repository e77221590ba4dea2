"""The map's files: each path's concurrent maximal versions, in the map's order.

Nearly every path of a folder has one version; a tuple per path to hold it was 48 of the ~700
bytes a file costs a node holding 100,000 (measured). So a lone version is held bare, and reads
give the tuple every caller expects (`files[path]`, `get`, `items`, `values`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from gossip_backer.core.record import FileRecord

Versions = tuple[FileRecord, ...]


class FileVersions(MutableMapping[str, Versions]):
    """path -> the tuple of its versions (never empty: a path without versions is absent)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, FileRecord | Versions] = {}

    def __getitem__(self, path: str) -> Versions:
        held = self._held[path]
        return (held,) if type(held) is FileRecord else held

    def get(self, path: str, default: object = None) -> Versions | object:
        held = self._held.get(path)
        if held is None:
            return default
        return (held,) if type(held) is FileRecord else held

    def __setitem__(self, path: str, versions: Versions) -> None:
        if not versions:
            raise ValueError("a path without versions is removed, not set")
        self._held[path] = versions[0] if len(versions) == 1 else tuple(versions)

    def __delitem__(self, path: str) -> None:
        del self._held[path]

    def __contains__(self, path: object) -> bool:
        return path in self._held

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def clear(self) -> None:
        self._held.clear()

    def copy(self) -> "FileVersions":
        other = FileVersions()
        other._held = dict(self._held)
        return other

    def __repr__(self) -> str:
        return f"FileVersions({dict(self.items())!r})"
