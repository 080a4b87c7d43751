"""The embedded SQLite inbox: durable, idempotent, all-or-nothing per delivery."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import pytest

from shared.dip.envelope import parse_delivery
from shared.dip.inbox import CONFLICT, DUPLICATE, NEW, Receipt, open_inbox
from shared.dip.inbox.sqlite import SqliteInbox
from shared.problems import DipEdgeError
from shared.settings import load_settings

RECEIPT = Receipt("2026-01-01T00:00:00.000Z", "pub-033", "AB" * 32, "CD" * 32)


def delivery(*txids: str, note: str = "", **d0):
    return parse_delivery(json.dumps([
        {"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"},
                                     "D0": {"transactionID": t, "replayIndicator": False, **d0}},
                     "CustomBlock": {"note": note}}}
        for t in txids]).encode())


@pytest.fixture
def inbox(tmp_path):
    box = SqliteInbox(tmp_path / "inbox.sqlite3")
    yield box
    box.close()


def test_store_then_duplicate(inbox):
    assert inbox.store(delivery("a", "b"), RECEIPT).outcomes == (NEW, NEW)
    assert inbox.store(delivery("b", "c"), RECEIPT).outcomes == (DUPLICATE, NEW)
    assert [m.transaction_id for m in inbox.list()] == ["a", "b", "c"]
    assert [m.transaction_id for m in inbox.list(2)] == ["a", "b"]


def test_same_id_twice_in_one_delivery_is_stored_once(inbox):
    assert inbox.store(delivery("a", "a"), RECEIPT).outcomes == (NEW, DUPLICATE)
    assert len(inbox.list()) == 1


def test_duplicates_across_statement_chunks(inbox, monkeypatch):
    # Large deliveries are written in several statements; an ID repeated in a later
    # statement is still a duplicate, and its first occurrence is still new.
    monkeypatch.setattr("shared.dip.inbox.sqlite._ROWS_PER_STATEMENT", 2)
    assert inbox.store(delivery("z"), RECEIPT).outcomes == (NEW,)
    assert inbox.store(delivery("a", "b", "c", "a", "z"), RECEIPT).outcomes == (
        NEW, NEW, NEW, DUPLICATE, DUPLICATE)
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
    assert again.store(delivery("a"), RECEIPT).outcomes == (DUPLICATE,)
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
    assert inbox.store(delivery("a", "b", "c"), RECEIPT).outcomes == (NEW, NEW, NEW)
    assert inbox.store(delivery("a", "b", "c"), RECEIPT).outcomes == (
        DUPLICATE, DUPLICATE, DUPLICATE)


def test_locked_database_is_unavailable_not_a_crash(tmp_path):
    box = SqliteInbox(tmp_path / "inbox.sqlite3", timeout=0.05)
    locker = sqlite3.connect(tmp_path / "inbox.sqlite3", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    with pytest.raises(DipEdgeError) as caught:
        box.store(delivery("a"), RECEIPT)
    assert caught.value.code == "inbox.unavailable" and "locked" in str(caught.value)
    locker.execute("ROLLBACK")
    assert box.store(delivery("a"), RECEIPT).outcomes == (NEW,)
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


def test_idempotency_is_by_transaction_id_alone_and_differing_bytes_are_conflicts(
        inbox, caplog):
    caplog.set_level(logging.WARNING, logger="dip_edge.inbox")
    assert inbox.store(delivery("a", "b"), RECEIPT).outcomes == (NEW, NEW)
    # The same IDs with another timestamp, another interface or other content: duplicates
    # (the DIP's key is the transaction ID), conflicts because the bytes differ.
    later = Receipt("2026-01-02T00:00:00.000Z", "other", None, None)
    result = inbox.store(delivery("a", "b", "c", transactionTimestamp="2026-02-01T00:00:00Z"),
                         later)
    assert result.outcomes == (CONFLICT, CONFLICT, NEW)
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 2, 2)
    warned = [r for r in caplog.records if getattr(r, "code", None) ==
              "message.conflicting_redelivery"]
    assert [r.transaction_id for r in warned] == ["a", "b"]
    assert all(r.levelname == "WARNING" and r.transaction_id in r.getMessage() for r in warned)
    # The same differing copy again: a conflict again, but kept once.
    again = inbox.store(delivery("a", transactionTimestamp="2026-02-01T00:00:00Z"), later)
    assert again.outcomes == (CONFLICT,)
    third = inbox.store(delivery("a", note="third"), later)
    assert third.outcomes == (CONFLICT,)
    assert inbox.store(delivery("a"), later).outcomes == (DUPLICATE,)  # the original's bytes

    listed = {m.transaction_id: m.conflicts for m in inbox.list()}
    assert listed == {"a": 2, "b": 1, "c": 0}
    shown = inbox.get("a")
    assert shown.body == delivery("a")[0].raw and shown.received_at == RECEIPT.received_at
    assert shown.conflicts == 2
    assert [c.body for c in shown.copies] == [
        delivery("a", transactionTimestamp="2026-02-01T00:00:00Z")[0].raw,
        delivery("a", note="third")[0].raw]
    assert {c.channel for c in shown.copies} == {"other"}


def test_a_differing_copy_within_one_delivery_is_a_conflict(inbox):
    messages = delivery("a") + delivery("a", note="changed") + delivery("a")
    assert inbox.store(messages, RECEIPT).outcomes == (NEW, CONFLICT, DUPLICATE)
    assert inbox.get("a").body == messages[0].raw
    assert [c.body for c in inbox.get("a").copies] == [messages[1].raw]


def test_an_inbox_written_before_conflicts_existed_opens_and_gains_them(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL "
                "UNIQUE, interface_id TEXT NOT NULL, publication_id TEXT, channel TEXT, "
                "received_at TEXT NOT NULL, replay_indicator INTEGER NOT NULL, "
                "client_thumbprint TEXT, signer_thumbprint TEXT, body BLOB NOT NULL)")
    old.execute("INSERT INTO messages VALUES (1, 'a', 'IF-033', NULL, NULL, 'then', 0, NULL, "
                "NULL, ?)", (delivery("a")[0].raw,))
    old.commit()
    old.close()
    box = SqliteInbox(path)
    assert box.store(delivery("a", note="new"), RECEIPT).outcomes == (CONFLICT,)
    assert [(m.transaction_id, m.conflicts) for m in box.list()] == [("a", 1)]
    box.close()


def test_waiting_for_the_lock_is_bounded_by_the_budget(tmp_path):
    box = SqliteInbox(tmp_path / "inbox.sqlite3", timeout=0.3)
    box._lock.acquire()  # another thread's store, stuck (an fsync on a dying disk)
    try:
        started = time.monotonic()
        with pytest.raises(DipEdgeError) as caught:
            box.store(delivery("a"), RECEIPT)
        assert time.monotonic() - started < 1.3
    finally:
        box._lock.release()
    assert caught.value.code == "inbox.unavailable" and caught.value.retry_after
    assert box.store(delivery("a"), RECEIPT).outcomes == (NEW,)
    box.close()
