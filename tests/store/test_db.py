"""store.db: opening, schema building, migrations, transactions, and sqlite errors as StoreError."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gossip_backer.errors import LocalError, StoreError
from gossip_backer.store.db import APPLICATION_ID, SQL_DIR, open_db, schema_version_of

TABLES = {"schema_version", "config", "updates", "local_files", "invites", "shares", "revisions"}


def tables(db) -> dict[str, int]:
    """name -> strict flag of the store's own tables."""
    rows = db.query("SELECT name, strict FROM pragma_table_list WHERE schema = 'main'")
    return {name: strict for name, strict in rows if not name.startswith("sqlite_")}


def versions(db) -> list[int]:
    return [v for (v,) in db.query("SELECT version FROM schema_version ORDER BY version")]


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A private copy of the sql folder that a test may add files to."""
    copy = tmp_path / "sql"
    shutil.copytree(SQL_DIR, copy)
    return copy


def test_new_store_has_every_table_strict_and_its_version(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        assert tables(db) == dict.fromkeys(TABLES, 1)
        assert db.version == schema_version_of() == 1
        assert versions(db) == [1]
        assert db.query_one("PRAGMA application_id")[0] == APPLICATION_ID
        assert db.integrity_check() == "ok"


def test_connection_settings(tmp_path):
    with open_db(tmp_path / "s.db", busy_timeout=2.5) as db:
        assert db.query_one("PRAGMA journal_mode")[0] == "wal"
        assert db.query_one("PRAGMA synchronous")[0] == 2  # FULL
        assert db.query_one("PRAGMA foreign_keys")[0] == 1
        assert db.query_one("PRAGMA busy_timeout")[0] == 2500


def test_schema_files_have_a_comment_per_table():
    for file in sorted(SQL_DIR.glob("[0-9]*.sql")):
        text = file.read_text()
        for chunk in text.split("CREATE TABLE")[1:]:
            name = chunk.split()[0]
            before = text[: text.index("CREATE TABLE " + name)].rstrip().splitlines()
            assert before and before[-1].startswith("--"), f"{file.name}: {name} has no comment"


def test_reopen_keeps_data_and_does_not_rebuild(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        db.run("INSERT INTO config VALUES ('k', x'01')")
    with open_db(tmp_path / "s.db") as db:
        assert db.query("SELECT key, value FROM config") == [("k", b"\x01")]
        assert versions(db) == [1]


def test_migration_runs_on_an_older_store(tmp_path, sql_copy):
    with open_db(tmp_path / "s.db") as db:  # a v1 store
        db.run("INSERT INTO shares VALUES ('t', 'docs', NULL, 1.0)")
    (sql_copy / "migrations" / "02-share-notes.sql").write_text(
        "-- a note per share\n"
        "ALTER TABLE shares ADD COLUMN note TEXT NOT NULL DEFAULT '';\n"
        "UPDATE shares SET note = 'migrated; ok';\n"
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;\n"
    )
    assert schema_version_of(sql_copy) == 2
    with open_db(tmp_path / "s.db", sql_dir=sql_copy) as db:
        assert db.version == 2
        assert versions(db) == [1, 2]
        assert db.query("SELECT token, note FROM shares") == [("t", "migrated; ok")]
        assert "notes" in tables(db)
    with open_db(tmp_path / "s.db", sql_dir=sql_copy) as db:  # not run twice
        assert versions(db) == [1, 2]


def test_new_store_is_born_at_the_newest_version_without_migrating(tmp_path, sql_copy):
    (sql_copy / "migrations" / "02-notes.sql").write_text("CREATE TABLE notes (id INTEGER) STRICT;\n")
    (sql_copy / "07-notes.sql").write_text("-- notes\nCREATE TABLE notes (id INTEGER) STRICT;\n")
    with open_db(tmp_path / "s.db", sql_dir=sql_copy) as db:
        assert db.version == 2
        assert versions(db) == [2]
        assert "notes" in tables(db)


def test_migrations_run_in_order_each_in_its_own_transaction(tmp_path, sql_copy):
    open_db(tmp_path / "s.db").close()
    mig = sql_copy / "migrations"
    (mig / "02-a.sql").write_text("CREATE TABLE a (x INTEGER) STRICT;\n")
    (mig / "03-b.sql").write_text("CREATE TABLE b (x INTEGER) STRICT;\nINSERT INTO nosuch VALUES (1);\n")
    with pytest.raises(StoreError, match="no such table: nosuch"):
        open_db(tmp_path / "s.db", sql_dir=sql_copy)
    raw = sqlite3.connect(tmp_path / "s.db")  # 02 committed, 03 rolled back whole
    assert raw.execute("SELECT version FROM schema_version ORDER BY 1").fetchall() == [(1,), (2,)]
    names = {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "a" in names and "b" not in names
    raw.close()
    (mig / "03-b.sql").write_text("CREATE TABLE b (x INTEGER) STRICT;\n")
    with open_db(tmp_path / "s.db", sql_dir=sql_copy) as db:
        assert versions(db) == [1, 2, 3]


def test_store_from_a_newer_program_is_refused(tmp_path, sql_copy):
    (sql_copy / "migrations" / "02-x.sql").write_text("CREATE TABLE x (a INTEGER) STRICT;\n")
    open_db(tmp_path / "s.db", sql_dir=sql_copy).close()
    with pytest.raises(StoreError, match="newer"):
        open_db(tmp_path / "s.db")


def test_duplicate_migration_numbers_are_our_bug(sql_copy):
    (sql_copy / "migrations" / "02-x.sql").write_text("SELECT 1;\n")
    (sql_copy / "migrations" / "02-y.sql").write_text("SELECT 1;\n")
    with pytest.raises(LocalError, match="duplicate"):
        schema_version_of(sql_copy)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    with pytest.raises(StoreError, match=r"is not a gossip-backer store$"):
        open_db(path)
    assert path.read_bytes().startswith(b"this is a text file")  # left untouched


def test_another_programs_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="is not a gossip-backer store"):
        open_db(path)


def test_an_empty_file_becomes_a_new_store(tmp_path):
    (tmp_path / "s.db").write_bytes(b"")
    with open_db(tmp_path / "s.db") as db:
        assert db.version == 1


def test_a_corrupt_store_is_a_store_error(tmp_path):
    path = tmp_path / "s.db"
    with open_db(path) as db:
        db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)  # keep the header, trash every page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        open_db(path)


def test_missing_folder_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot be opened"):
        open_db(tmp_path / "no" / "such" / "s.db")


def test_a_locked_store_is_a_store_error(tmp_path):
    path = tmp_path / "s.db"
    open_db(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with open_db(path, busy_timeout=0.05) as db:
            with pytest.raises(StoreError, match="locked"):
                with db.transaction():
                    pass
            assert db.query("SELECT count(*) FROM config") == [(0,)]  # readers carry on (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_disk_full_is_a_store_error_and_rolls_back(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        pages = db.query_one("PRAGMA page_count")[0]
        db.query(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StoreError, match="disk is full"):
            with db.transaction():
                db.run("INSERT INTO config VALUES ('small', x'00')")
                db.run("INSERT INTO config VALUES ('big', ?)", (b"\0" * 100_000,))
        assert db.query("SELECT key FROM config") == []
        db.run("INSERT INTO config VALUES ('after', x'00')")  # still usable
        assert db.query("SELECT key FROM config") == [("after",)]


def test_transaction_commits_or_rolls_back(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        with db.transaction():
            db.run("INSERT INTO config VALUES ('a', x'01')")
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.run("INSERT INTO config VALUES ('b', x'01')")
                raise RuntimeError("boom")
        assert db.query("SELECT key FROM config") == [("a",)]


def test_nested_transaction_is_a_savepoint(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        with db.transaction():
            db.run("INSERT INTO config VALUES ('outer', x'01')")
            with pytest.raises(RuntimeError):
                with db.transaction():
                    db.run("INSERT INTO config VALUES ('inner', x'01')")
                    raise RuntimeError("inner fails")
            with db.transaction():
                db.run("INSERT INTO config VALUES ('inner2', x'01')")
        assert db.query("SELECT key FROM config ORDER BY key") == [("inner2",), ("outer",)]


def test_constraint_violation_is_our_bug_not_the_stores(tmp_path):
    with open_db(tmp_path / "s.db") as db:
        with pytest.raises(LocalError):
            db.run("INSERT INTO invites VALUES (x'01', x'02', 7, 1.0, 1.0, NULL)")
