"""core/indexrow.py: a row held as a map version plus its inode reads, compares and changes as
the IndexEntry of the same fields, and only a row of exactly the version's content is one."""

from dataclasses import replace

from gossip_backer.core.indexrow import FIELDS, VersionRow, changed, compact, entry_of, row_of
from gossip_backer.core.record import Block, FileRecord, IndexEntry
from gossip_backer.core.vv import VersionVector

ME = b"m" * 32
H = b"\x07" * 32
VV = VersionVector({ME: 3})
VERSION = FileRecord(path="a/b.txt", kind="file", vv=VV, origin=ME, size=5, mtime_ns=123_456_789_000,
                     mode=0o644, hash=H, block_size=131072, blocks=(Block(H, 9),))


def row(**changes) -> IndexEntry:
    entry = IndexEntry("a/b.txt", 5, 123_456_789_000, 4242, 0o644, "file", H, 131072, (Block(H, 9),),
                       None, VV)
    return replace(entry, **changes)


def test_a_row_of_the_version_reads_compares_and_hashes_as_its_entry():
    entry = row()
    held = compact(entry, VERSION)
    assert isinstance(held, VersionRow) and held.version is VERSION and held.inode == 4242
    assert [getattr(held, f) for f in FIELDS] == [getattr(entry, f) for f in FIELDS]
    assert held == entry and entry == held and hash(held) == hash(entry)
    assert held != row(inode=1) and row(inode=1) != held
    assert entry_of(held) == entry and type(entry_of(held)) is IndexEntry and entry_of(entry) is entry
    assert changed(held, inode=-1) == row(inode=-1) and changed(entry, vv=VersionVector()) == row(vv=VersionVector())
    assert compact(held, VERSION) is held


def test_only_the_exact_content_of_a_live_version_is_held_as_it():
    for other in (row(size=6), row(mtime_ns=1), row(mode=0o4644), row(hash=b"\x08" * 32),
                  row(blocks=()), row(vv=VersionVector({ME: 4})), row(path="a/c.txt")):
        assert compact(other, VERSION) is other
    assert compact(row(), replace(VERSION, deleted=True)) == row()
    assert type(compact(row(), replace(VERSION, deleted=True))) is IndexEntry
    assert compact(row(), None) == row()


def test_what_a_scan_saw_is_a_row_of_the_version_only_when_it_is_that_content():
    from gossip_backer.disk.scan import ScanEntry

    seen = ScanEntry("a/b.txt", 5, 123_456_789_000, 4242, 0o644, "file", H, 131072, (Block(H, 9),))
    held = row_of(seen, VV, VERSION)
    assert isinstance(held, VersionRow) and held == row()
    assert row_of(seen, VersionVector({ME: 4}), VERSION) is None
    assert row_of(replace(seen, mode=0o4644), VV, VERSION) is None
    assert row_of(seen, VV, replace(VERSION, deleted=True)) is None
