"""The inbox: where every DIP message is stored durably *before* the delivery is acknowledged.

One interface, two implementations: :class:`~shared.dip.inbox.sqlite.SqliteInbox` (the
embedded default, ``DIP_EDGE_STATE_DIR/inbox.sqlite3``) and
:class:`~shared.dip.inbox.blob.BlobInbox` (Azure Blob storage plus a queue pointer, for
production). ``open_inbox(settings)`` picks one from ``INBOX_BACKEND``.

Contract of :meth:`Inbox.store`: it returns only when every message of the delivery is
durably stored (``True`` = newly stored, ``False`` = already there, by transaction ID); if
storage fails it raises ``DipEdgeError(inbox.unavailable)`` and a retry of the same
delivery stores what is missing and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.dip.envelope import Message
from shared.settings import Settings

# What open_inbox reads (the blob inbox also reads INBOX_CONTAINER and INBOX_QUEUE).
INBOX_SETTINGS = (Settings.inbox_backend, Settings.inbox_storage, Settings.dip_edge_state_dir,
                  Settings.inbox_container, Settings.inbox_queue)


@dataclass(frozen=True)
class Receipt:
    """What the webhook knows about a delivery besides its messages."""

    received_at: str  # UTC ISO-8601 with milliseconds and "Z"
    channel: str | None  # the route's {channel}; None on the bare route
    client_thumbprint: str | None  # SHA-256 hex of the TLS client certificate
    signer_thumbprint: str | None  # SHA-256 hex of the DIP signing certificate


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
    location: str  # where it lives: "sqlite:<row>" or the blob name
    body: bytes | None = None  # the message as canonical JSON (``get`` only)

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
        }


class Inbox(Protocol):
    def store(self, messages: Sequence[Message], receipt: Receipt) -> list[bool]:
        """Store every message; per message ``True`` if new, ``False`` if a duplicate."""

    def list(self, limit: int | None = None) -> list[StoredMessage]:
        """Stored messages, oldest first (without bodies)."""

    def get(self, transaction_id: str) -> StoredMessage | None:
        """One stored message with its body, or ``None``."""

    def close(self) -> None: ...


def open_inbox(settings: Settings) -> Inbox:
    """The configured inbox; raises ``DipEdgeError(config.invalid)`` on bad inbox settings."""
    settings.require(*INBOX_SETTINGS)
    if settings.inbox_backend == "blob":
        from shared.dip.inbox.blob import BlobInbox

        return BlobInbox.from_settings(settings)
    from shared.dip.inbox.sqlite import SqliteInbox

    return SqliteInbox(settings.state_dir / "inbox.sqlite3")
