"""The embedded SQLite inbox: durable, idempotent, all-or-nothing per delivery."""

from __future__ import annotations

import json
import sqlite3

import pytest

from shared.dip.envelope import parse_delivery
from shared.dip.inbox import Receipt, open_inbox
from shared.dip.inbox.sqlite import SqliteInbox
from shared.problems import DipEdgeError
from shared.settings import load_settings

RECEIPT = Receipt("2026-01-01T00:00:00.000Z", "pub-033", "AB" * 32, "CD" * 32)


def delivery(*txids: str):
    return parse_delivery(json.dumps([
        {"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"},
                                     "D0": {"transactionID": t, "replayIndicator": False}}}}
        for t in txids]).encode())


@pytest.fixture
def inbox(tmp_path):
    box = SqliteInbox(tmp_path / "inbox.sqlite3")
    yield box
    box.close()


def test_store_then_duplicate(inbox):
    assert inbox.store(delivery("a", "b"), RECEIPT) == [True, True]
    assert inbox.store(delivery("b", "c"), RECEIPT) == [False, True]
    assert [m.transaction_id for m in inbox.list()] == ["a", "b", "c"]
    assert [m.transaction_id for m in inbox.list(2)] == ["a", "b"]


def test_same_id_twice_in_one_delivery_is_stored_once(inbox):
    assert inbox.store(delivery("a", "a"), RECEIPT) == [True, False]
    assert len(inbox.list()) == 1


def test_duplicates_across_statement_chunks(inbox, monkeypatch):
    # Large deliveries are written in several statements; an ID repeated in a later
    # statement is still a duplicate, and its first occurrence is still new.
    monkeypatch.setattr("shared.dip.inbox.sqlite._ROWS_PER_STATEMENT", 2)
    assert inbox.store(delivery("z"), RECEIPT) == [True]
    assert inbox.store(delivery("a", "b", "c", "a", "z"), RECEIPT) == [
        True, True, True, False, False]
    assert [m.transaction_id for m in inbox.list()] == ["z", "a", "b", "c"]


def test_get_returns_metadata_and_body(inbox):
    inbox.store(delivery("a"), RECEIPT)
    message = inbox.get("a")
    assert message.channel == "pub-033" and message.client_thumbprint == "AB" * 32
    assert message.signer_thumbprint == "CD" * 32 and message.interface_id == "IF-033"
    assert json.loads(message.body)["payload"]["CommonBlock"]["D0"]["transactionID"] == "a"
    assert inbox.get("missing") is None
    assert inbox.list()[0].body is None  # listing doesn't load bodies


def test_journal_is_wal_and_commits_are_synchronous(inbox):
    assert inbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert inbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_stored_messages_survive_reopening(tmp_path):
    first = SqliteInbox(tmp_path / "inbox.sqlite3")
    first.store(delivery("a"), RECEIPT)
    first.close()
    again = SqliteInbox(tmp_path / "inbox.sqlite3")
    assert again.store(delivery("a"), RECEIPT) == [False]
    again.close()


def test_failure_between_two_messages_stores_nothing_and_the_retry_stores_all(inbox, tmp_path):
    # Another process's trigger makes SQLite fail on the second message of the delivery.
    other = sqlite3.connect(tmp_path / "inbox.sqlite3")
    other.execute("CREATE TRIGGER fail BEFORE INSERT ON messages WHEN NEW.transaction_id = 'b' "
                  "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    other.commit()
    with pytest.raises(DipEdgeError) as caught:
        inbox.store(delivery("a", "b", "c"), RECEIPT)
    assert caught.value.code == "inbox.unavailable" and caught.value.retry_after
    assert inbox.list() == []
    other.execute("DROP TRIGGER fail")
    other.commit()
    other.close()
    assert inbox.store(delivery("a", "b", "c"), RECEIPT) == [True, True, True]
    assert inbox.store(delivery("a", "b", "c"), RECEIPT) == [False, False, False]


def test_locked_database_is_unavailable_not_a_crash(tmp_path):
    box = SqliteInbox(tmp_path / "inbox.sqlite3", busy_timeout_ms=50)
    locker = sqlite3.connect(tmp_path / "inbox.sqlite3", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    with pytest.raises(DipEdgeError) as caught:
        box.store(delivery("a"), RECEIPT)
    assert caught.value.code == "inbox.unavailable" and "locked" in str(caught.value)
    locker.execute("ROLLBACK")
    assert box.store(delivery("a"), RECEIPT) == [True]
    box.close()
    locker.close()


def test_unopenable_path_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DipEdgeError) as caught:
        SqliteInbox(blocker / "inbox.sqlite3")
    assert caught.value.code == "inbox.unavailable"


def test_open_inbox_defaults_to_sqlite_in_the_state_dir(tmp_path):
    box = open_inbox(load_settings({"DIP_EDGE_STATE_DIR": str(tmp_path / "state")}))
    try:
        assert isinstance(box, SqliteInbox)
        assert box.path == str(tmp_path / "state" / "inbox.sqlite3")
    finally:
        box.close()


def test_open_inbox_rejects_blob_without_storage():
    with pytest.raises(DipEdgeError) as caught:
        open_inbox(load_settings({"INBOX_BACKEND": "blob"}))
    assert caught.value.code == "config.invalid"
