"""core.invite.InviteTable: the invites a node made, in memory; a read of the store merged in
never undoes a use made here and not yet stored, and brings in what another process stored."""

from gossip_backer.core.invite import InviteTable


def test_an_invite_is_spent_once_and_then_says_why():
    table = InviteTable()
    table.create(b"k1", True, expires=100.0)
    assert table.state(b"k1", 50.0) == "usable" and table.state(b"nobody", 50.0) is None
    assert table.claim(b"k1", 50.0) is True  # its role: read-only
    assert table.claim(b"k1", 51.0) is None and table.state(b"k1", 51.0) == "used"
    table.create(b"k2", False, expires=100.0)
    assert table.claim(b"k2", 100.0) is None and table.state(b"k2", 100.0) == "expired"


def test_a_store_read_adds_new_rows_and_never_undoes_a_use():
    table = InviteTable()
    table.create(b"spent-here", False, expires=100.0)
    table.create(b"spent-there", False, expires=100.0)
    assert table.claim(b"spent-here", 10.0) is False
    table.merge([(b"spent-here", False, 100.0, None),  # read before our claim was stored
                 (b"spent-there", False, 100.0, 20.0),  # the store knows of a use
                 (b"new", True, 100.0, None)])  # made by another process
    assert table.state(b"spent-here", 30.0) == "used"
    assert table.state(b"spent-there", 30.0) == "used"
    assert table.claim(b"new", 30.0) is True
