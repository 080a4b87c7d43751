"""The embedded inbox: one SQLite file, WAL journal, every commit fsynced.

A delivery is one transaction: all its messages are committed together or none is, so
a failure part-way stores nothing and the DIP's retry stores everything once. The
transaction ID is UNIQUE and rows are written with ``ON CONFLICT DO NOTHING``, so a redelivery
is reported as a duplicate instead of stored twice. One connection per inbox, shared by
the server's threads under a lock (SQLite serialises writers anyway).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from shared.dip.envelope import Message
from shared.dip.inbox import Receipt, StoredMessage
from shared.private import private_dir, private_file
from shared.problems import INBOX_UNAVAILABLE, DipEdgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL UNIQUE,
    interface_id TEXT NOT NULL,
    publication_id TEXT,
    channel TEXT,
    received_at TEXT NOT NULL,
    replay_indicator INTEGER NOT NULL,
    client_thumbprint TEXT,
    signer_thumbprint TEXT,
    body BLOB NOT NULL
)
"""
_LIST = ("SELECT seq, transaction_id, interface_id, publication_id, channel, received_at, "
         "replay_indicator, client_thumbprint, signer_thumbprint, NULL FROM messages "
         "ORDER BY seq LIMIT ?")
_GET = ("SELECT seq, transaction_id, interface_id, publication_id, channel, received_at, "
        "replay_indicator, client_thumbprint, signer_thumbprint, body FROM messages "
        "WHERE transaction_id = ?")
_EXISTING = "SELECT transaction_id FROM messages WHERE transaction_id IN "
_INSERT = ("INSERT INTO messages (transaction_id, interface_id, publication_id, channel, "
           "received_at, replay_indicator, client_thumbprint, signer_thumbprint, body) VALUES ")
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ON_CONFLICT = " ON CONFLICT (transaction_id) DO NOTHING"
_ROWS_PER_STATEMENT = 500  # 9 parameters each, well under SQLite's limit of 32766


@lru_cache(maxsize=64)
def _statements(rows: int) -> tuple[str, str]:
    """(SELECT of those IDs already stored, multi-row INSERT) for ``rows`` messages."""
    return (_EXISTING + "(" + ", ".join(["?"] * rows) + ")",
            _INSERT + ", ".join([_ROW] * rows) + _ON_CONFLICT)


class SqliteInbox:
    """``SqliteInbox(path)``; ``synchronous`` other than FULL is for benchmarks only."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                # Owner-only whatever the umask; SQLite gives its -wal and -shm files the
                # database file's mode.
                private_dir(Path(self.path).parent)
                private_file(self.path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=busy_timeout_ms / 1000)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from None

    def store(self, messages: Sequence[Message], receipt: Receipt) -> list[bool]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    stored = self._insert(messages, receipt)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None
        # New = not stored before, and the first of its ID in this delivery.
        seen = stored
        new = []
        for message in messages:
            new.append(message.transaction_id not in seen)
            seen.add(message.transaction_id)
        return new

    def _insert(self, messages: Sequence[Message], receipt: Receipt) -> set[str]:
        """Insert, in the open transaction, the messages not stored yet; the IDs that were.

        BEGIN IMMEDIATE holds the write lock, so nothing can insert between the SELECT and
        the INSERT. (Asking first is cheaper than INSERT ... RETURNING, which steps once
        per row; duplicates are the rare case.)
        """
        chunks = [messages[start:start + _ROWS_PER_STATEMENT]
                  for start in range(0, len(messages), _ROWS_PER_STATEMENT)]
        stored: set[str] = set()
        for chunk in chunks:  # every SELECT before any INSERT of this delivery
            stored.update(row[0] for row in self._db.execute(
                _statements(len(chunk))[0], [m.transaction_id for m in chunk]))
        fields = (receipt.channel, receipt.received_at)
        thumbprints = (receipt.client_thumbprint, receipt.signer_thumbprint)
        for chunk in chunks:
            values: list = []
            for m in chunk:
                values += (m.transaction_id, m.interface_id, m.publication_id, *fields,
                           int(m.replay_indicator), *thumbprints, m.raw)
            self._db.execute(_statements(len(chunk))[1], values)
        return stored

    def list(self, limit: int | None = None) -> list[StoredMessage]:
        # LIMIT -1 is SQLite's "no limit".
        return [_stored(row) for row in self._query(_LIST, (-1 if limit is None else limit,))]

    def get(self, transaction_id: str) -> StoredMessage | None:
        rows = self._query(_GET, (transaction_id,))
        return _stored(rows[0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None


def _stored(row: tuple) -> StoredMessage:
    seq, txid, interface, publication, channel, received, replay, client, signer, body = row
    return StoredMessage(txid, interface, publication, channel, received, bool(replay),
                         client, signer, f"sqlite:{seq}", body)


def _unavailable(exc: Exception) -> DipEdgeError:
    # The SQLite message names the failure ("database is locked", "disk I/O error"), no data.
    return DipEdgeError(INBOX_UNAVAILABLE(f"The SQLite inbox failed: {exc}"), retry_after=5)
