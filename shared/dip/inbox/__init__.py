"""The inbox: where every DIP message is stored durably *before* the delivery is acknowledged.

One interface, two implementations: :class:`~shared.dip.inbox.sqlite.SqliteInbox` (the
embedded default, ``DIP_EDGE_STATE_DIR/inbox.sqlite3``) and
:class:`~shared.dip.inbox.blob.BlobInbox` (Azure Blob + Table storage and a queue pointer,
for production). ``open_inbox(settings)`` picks one from ``INBOX_BACKEND``.

Contract of :meth:`Inbox.store`: it returns only when every message of the delivery is
durably stored, with one outcome per message, by transaction ID alone: ``NEW`` (stored
now), ``DUPLICATE`` (that ID is already stored, with the same bytes, or earlier in this
delivery) or ``CONFLICT`` (a duplicate whose exact bytes differ from the stored copy: the
copy is kept beside the original for audit, never in its place, and a WARNING with code
``message.conflicting_redelivery`` is logged). If storage fails, or the store takes longer
than ``INBOX_TIMEOUT_SECONDS``, it raises ``DipEdgeError(inbox.unavailable)`` and a retry of
the same delivery stores what is missing and duplicates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.dip.envelope import Message
from shared.logtext import shown
from shared.problems import MESSAGE_CONFLICTING_REDELIVERY
from shared.settings import Settings

# What open_inbox reads (the blob inbox also reads INBOX_CONTAINER, INBOX_TABLE and
# INBOX_QUEUE).
INBOX_SETTINGS = (Settings.inbox_backend, Settings.inbox_storage, Settings.dip_edge_state_dir,
                  Settings.inbox_container, Settings.inbox_table, Settings.inbox_queue,
                  Settings.inbox_timeout_seconds)

logger = logging.getLogger("dip_edge.inbox")

NEW, DUPLICATE, CONFLICT = "new", "duplicate", "conflict"
_WARNINGS_PER_DELIVERY = 100  # one record per conflict up to this; then one for the rest


@dataclass(frozen=True)
class Receipt:
    """What the webhook knows about a delivery besides its messages."""

    received_at: str  # UTC ISO-8601 with milliseconds and "Z"
    channel: str | None  # the route's {channel}; None on the bare route
    client_thumbprint: str | None  # SHA-256 hex of the TLS client certificate
    signer_thumbprint: str | None  # SHA-256 hex of the DIP signing certificate


@dataclass(frozen=True)
class StoreResult:
    """One outcome per message of the delivery, in order (``NEW``/``DUPLICATE``/``CONFLICT``)."""

    transaction_ids: tuple[str, ...]
    outcomes: tuple[str, ...]

    @property
    def accepted(self) -> int:
        return self.outcomes.count(NEW)

    @property
    def duplicates(self) -> int:
        """Conflicts are duplicates too."""
        return len(self.outcomes) - self.accepted

    @property
    def conflicts(self) -> int:
        return self.outcomes.count(CONFLICT)

    @property
    def conflicting_ids(self) -> list[str]:
        return [t for t, o in zip(self.transaction_ids, self.outcomes, strict=True)
                if o == CONFLICT]


@dataclass(frozen=True)
class StoredMessage:
    transaction_id: str
    interface_id: str
    publication_id: str | None
    channel: str | None
    received_at: str
    replay_indicator: bool
    client_thumbprint: str | None
    signer_thumbprint: str | None
    location: str  # where it lives: "sqlite:<row>", or "<blob>#<offset>+<length>"
    body: bytes | None = None  # the message exactly as delivered (``get`` only)
    conflicts: int = 0  # differing copies kept for audit
    copies: tuple[StoredMessage, ...] = ()  # those copies, oldest first (``get`` only)

    def to_dict(self) -> dict:
        return {
            "transactionId": self.transaction_id,
            "interfaceId": self.interface_id,
            "publicationId": self.publication_id,
            "channel": self.channel,
            "receivedAt": self.received_at,
            "replayIndicator": self.replay_indicator,
            "clientThumbprint": self.client_thumbprint,
            "signerThumbprint": self.signer_thumbprint,
            "location": self.location,
            "conflicts": self.conflicts,
        }


class Inbox(Protocol):
    def store(self, messages: Sequence[Message], receipt: Receipt) -> StoreResult:
        """Store every message (see the module docstring)."""

    def list(self, limit: int | None = None) -> list[StoredMessage]:
        """One record per transaction ID, oldest first (without bodies), with its count of
        conflicting copies."""

    def get(self, transaction_id: str) -> StoredMessage | None:
        """The original with its body and every differing copy, or ``None``."""

    def close(self) -> None: ...


def result_of(messages: Sequence[Message], outcomes: Sequence[str],
              receipt: Receipt) -> StoreResult:
    """The result, after the WARNING for each conflict (both backends report them here)."""
    result = StoreResult(tuple(m.transaction_id for m in messages), tuple(outcomes))
    conflicting = result.conflicting_ids
    for transaction_id in conflicting[:_WARNINGS_PER_DELIVERY]:
        logger.warning(
            "conflicting redelivery: code=%s transaction_id=%s channel=%s (a stored "
            "transaction ID with different bytes; the copy is kept, the original stays)",
            MESSAGE_CONFLICTING_REDELIVERY.code, shown(transaction_id),
            shown(receipt.channel) if receipt.channel is not None else "-",
            extra={"code": MESSAGE_CONFLICTING_REDELIVERY.code,
                   "transaction_id": transaction_id})
    if len(conflicting) > _WARNINGS_PER_DELIVERY:
        logger.warning("conflicting redelivery: code=%s and %d more conflicts in this "
                       "delivery (see `dip-edge inbox list`)",
                       MESSAGE_CONFLICTING_REDELIVERY.code,
                       len(conflicting) - _WARNINGS_PER_DELIVERY,
                       extra={"code": MESSAGE_CONFLICTING_REDELIVERY.code})
    return result


def open_inbox(settings: Settings) -> Inbox:
    """The configured inbox; raises ``DipEdgeError(config.invalid)`` on bad inbox settings."""
    settings.require(*INBOX_SETTINGS)
    if settings.inbox_backend == "blob":
        from shared.dip.inbox.blob import BlobInbox

        return BlobInbox.from_settings(settings)
    from shared.dip.inbox.sqlite import SqliteInbox

    return SqliteInbox(settings.state_dir / "inbox.sqlite3",
                       timeout=settings.inbox_timeout_seconds)
