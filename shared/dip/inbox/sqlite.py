"""The embedded inbox: one SQLite file, WAL journal, every commit fsynced.

A delivery is one transaction: all its messages are committed together or none is, so
a failure part-way stores nothing and the DIP's retry stores everything once. The
transaction ID is UNIQUE and rows are written with ``ON CONFLICT DO NOTHING``, so a redelivery
is reported as a duplicate instead of stored twice. A duplicate whose bytes differ is a
conflict: its copy goes to ``conflicts`` (one row per distinct copy), never over the original.
One connection per inbox, shared by the server's threads under a lock (SQLite serialises
writers anyway); waiting for it, or for another process's write lock, is bounded by the
inbox's time budget (``INBOX_TIMEOUT_SECONDS``).
"""

from __future__ import annotations

import builtins
import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.dip.envelope import Message
from shared.dip.inbox import (
    CONFLICT,
    DUPLICATE,
    NEW,
    Receipt,
    StoredMessage,
    StoreResult,
    result_of,
)
from shared.private import private_dir, private_file
from shared.problems import INBOX_UNAVAILABLE, DipEdgeError
from shared.telemetry import dependency_failure

_COLUMNS = """
    transaction_id TEXT NOT NULL {unique},
    interface_id TEXT NOT NULL,
    publication_id TEXT,
    channel TEXT,
    received_at TEXT NOT NULL,
    replay_indicator INTEGER NOT NULL,
    client_thumbprint TEXT,
    signer_thumbprint TEXT,
    body BLOB NOT NULL"""
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY,"
    + _COLUMNS.format(unique="UNIQUE") + ")",
    # A differing copy of a stored transaction ID, once per distinct content.
    "CREATE TABLE IF NOT EXISTS conflicts (seq INTEGER PRIMARY KEY,"
    + _COLUMNS.format(unique="") + ", sha256 TEXT NOT NULL, UNIQUE (transaction_id, sha256))",
)
_FIELDS = ("transaction_id, interface_id, publication_id, channel, received_at, "
           "replay_indicator, client_thumbprint, signer_thumbprint")
# Built from the constant column names above, never from data (hence the noqa).
_LIST = (f"SELECT seq, {_FIELDS}, NULL, (SELECT COUNT(*) FROM conflicts c WHERE "  # noqa: S608
         "c.transaction_id = m.transaction_id) FROM messages m ORDER BY seq LIMIT ?")
_GET = f"SELECT seq, {_FIELDS}, body, 0 FROM messages WHERE transaction_id = ?"  # noqa: S608
_COPIES = (f"SELECT seq, {_FIELDS}, body, 0 FROM conflicts "  # noqa: S608
           "WHERE transaction_id = ? ORDER BY seq")
_EXISTING = "SELECT transaction_id, body FROM messages WHERE transaction_id IN "
_INSERT = f"INSERT INTO messages ({_FIELDS}, body) VALUES "  # noqa: S608
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ON_CONFLICT = " ON CONFLICT (transaction_id) DO NOTHING"
_INSERT_COPY = (f"INSERT INTO conflicts ({_FIELDS}, body, sha256) VALUES "  # noqa: S608
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_ROWS_PER_STATEMENT = 500  # 9 parameters each, well under SQLite's limit of 32766


@lru_cache(maxsize=64)
def _statements(rows: int) -> tuple[str, str]:
    """(SELECT of those IDs already stored, multi-row INSERT) for ``rows`` messages."""
    return (_EXISTING + "(" + ", ".join(["?"] * rows) + ")",
            _INSERT + ", ".join([_ROW] * rows) + _ON_CONFLICT)


class SqliteInbox:
    """``SqliteInbox(path)``; ``synchronous`` other than FULL is for benchmarks only.
    ``timeout``: seconds a store may wait for the lock (this process's or another's)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL",
                 timeout: float = 10.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                # Owner-only whatever the umask; SQLite gives its -wal and -shm files the
                # database file's mode.
                private_dir(Path(self.path).parent)
                private_file(self.path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=timeout)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            for statement in SCHEMA:
                self._db.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from None

    def store(self, messages: Sequence[Message], receipt: Receipt) -> StoreResult:
        if not self._lock.acquire(timeout=self._timeout):
            raise DipEdgeError(INBOX_UNAVAILABLE(
                f"The SQLite inbox stayed busy for {self._timeout:g} s."), retry_after=5)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                outcomes = self._insert(messages, receipt)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        finally:
            self._lock.release()
        return result_of(messages, outcomes, receipt)

    def _insert(self, messages: Sequence[Message], receipt: Receipt) -> list[str]:
        """Insert, in the open transaction, the messages not stored yet and the differing
        copies of those that were; the outcome of each message.

        BEGIN IMMEDIATE holds the write lock, so nothing can insert between the SELECT and
        the INSERT. (Asking first is cheaper than INSERT ... RETURNING, which steps once
        per row; duplicates are the rare case, and only theirs bodies are read.)
        """
        chunks = [messages[start:start + _ROWS_PER_STATEMENT]
                  for start in range(0, len(messages), _ROWS_PER_STATEMENT)]
        stored: dict[str, bytes] = {}
        for chunk in chunks:  # every SELECT before any INSERT of this delivery
            stored.update(self._db.execute(
                _statements(len(chunk))[0], [m.transaction_id for m in chunk]).fetchall())
        fields = (receipt.channel, receipt.received_at)
        thumbprints = (receipt.client_thumbprint, receipt.signer_thumbprint)

        def row(m: Message) -> tuple:
            return (m.transaction_id, m.interface_id, m.publication_id, *fields,
                    int(m.replay_indicator), *thumbprints, m.raw)

        outcomes: list[str] = []
        copies: list[tuple] = []
        known = dict(stored)  # transaction ID -> the original's bytes, this delivery's too
        for m in messages:
            original = known.get(m.transaction_id)
            if original is None:
                known[m.transaction_id] = m.raw
                outcomes.append(NEW)
            elif original == m.raw:
                outcomes.append(DUPLICATE)
            else:
                outcomes.append(CONFLICT)
                copies.append((*row(m), hashlib.sha256(m.raw).hexdigest()))
        for chunk in chunks:
            values: list = []
            for m in chunk:
                values += row(m)
            self._db.execute(_statements(len(chunk))[1], values)
        if copies:
            self._db.executemany(_INSERT_COPY, copies)
        return outcomes

    def list(self, limit: int | None = None) -> list[StoredMessage]:
        # LIMIT -1 is SQLite's "no limit".
        return [_stored(row) for row in self._query(_LIST, (-1 if limit is None else limit,))]

    def get(self, transaction_id: str) -> StoredMessage | None:
        rows = self._query(_GET, (transaction_id,))
        if not rows:
            return None
        copies = tuple(_stored(row, "sqlite:conflict:")
                       for row in self._query(_COPIES, (transaction_id,)))
        return replace(_stored(rows[0]), conflicts=len(copies), copies=copies)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple[Any, ...]) -> builtins.list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None


def _stored(row: tuple, where: str = "sqlite:") -> StoredMessage:
    seq, txid, interface, publication, channel, received, replay, client, signer, body, \
        conflicts = row
    return StoredMessage(txid, interface, publication, channel, received, bool(replay),
                         client, signer, f"{where}{seq}", body, conflicts)


def _unavailable(exc: Exception) -> DipEdgeError:
    # The SQLite message names the failure ("database is locked", "disk I/O error"), no data.
    dependency_failure("inbox", "store", INBOX_UNAVAILABLE.code, error=type(exc).__name__)
    return DipEdgeError(INBOX_UNAVAILABLE(f"The SQLite inbox failed: {exc}"), retry_after=5)
