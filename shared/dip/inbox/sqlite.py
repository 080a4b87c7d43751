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
from pathlib import Path

from shared.dip.envelope import Message
from shared.dip.inbox import Receipt, StoredMessage
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
_INSERT = ("INSERT INTO messages (transaction_id, interface_id, publication_id, channel, "
           "received_at, replay_indicator, client_thumbprint, signer_thumbprint, body) VALUES ")
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ON_CONFLICT = " ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id"
_ROWS_PER_STATEMENT = 500  # 9 parameters each, well under SQLite's limit of 32766


class SqliteInbox:
    """``SqliteInbox(path)``; ``synchronous`` other than FULL is for benchmarks only."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=busy_timeout_ms / 1000)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from None

    def store(self, messages: Sequence[Message], receipt: Receipt) -> list[bool]:
        rows = [(m.transaction_id, m.interface_id, m.publication_id, receipt.channel,
                 receipt.received_at, int(m.replay_indicator), receipt.client_thumbprint,
                 receipt.signer_thumbprint, m.raw) for m in messages]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    inserted = self._insert(rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None
        # New = inserted now, and the first of its ID in this delivery.
        seen: set[str] = set()
        new = []
        for message in messages:
            new.append(message.transaction_id in inserted and message.transaction_id not in seen)
            seen.add(message.transaction_id)
        return new

    def _insert(self, rows: list[tuple]) -> set[str]:
        """Multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING: the IDs actually inserted."""
        inserted: set[str] = set()
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start:start + _ROWS_PER_STATEMENT]
            sql = _INSERT + ", ".join([_ROW] * len(chunk)) + _ON_CONFLICT
            values = [value for row in chunk for value in row]
            inserted.update(r[0] for r in self._db.execute(sql, values).fetchall())
        return inserted

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
