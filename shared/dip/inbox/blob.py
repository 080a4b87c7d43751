"""The production inbox: one blob per message, then a queue message pointing at it.

Blob names are ``<date>/<interfaceID>/<transactionID>.json`` where the date is the
message's own (``D0.transactionTimestamp``), not the receipt time, so a redelivery after
midnight maps to the same name. The IDs are percent-encoded (``.``/``..`` as ``%2E``, and
one too long for Azure's 1,024-character names as ``=sha256-<hex>``); the metadata keeps
them as sent. Blobs are written create-only (``If-None-Match: *``): a
redelivery finds the blob there and is reported as a duplicate, never overwritten.

After the blob, a small queue message (a pointer: container, blob name, IDs) tells
downstream processing. A crash between the two would lose the pointer, so the blob is
marked ``queued=true`` only after the send; a redelivery that finds the blob without the
marker sends the pointer again. Queue delivery is at-least-once either way: consumers
de-duplicate by transaction ID. The pointer stays far below the queue's 64 KiB limit
whatever the message's size, because the message itself stays in the blob.

Storage errors raise ``DipEdgeError(inbox.unavailable)``; messages stored before the
failure stay stored, and the DIP's retry stores the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from urllib.parse import quote, unquote

from shared.dip.envelope import Message
from shared.dip.inbox import Receipt, StoredMessage
from shared.problems import CONFIG_INVALID, INBOX_UNAVAILABLE, DipEdgeError
from shared.settings import Settings

QUEUE_MESSAGE_LIMIT = 64 * 1024  # bytes, after base64
_POINTER_LIMIT = QUEUE_MESSAGE_LIMIT * 3 // 4  # before base64


_MAX_NAME_PART = 500  # two parts, the date and ".json" within Azure's 1,024 characters


def _name_part(value: str) -> str:
    """``value`` as one segment of a blob name or one metadata value: percent-encoded,
    one-to-one, and at most ``_MAX_NAME_PART`` characters (Azure caps names at 1,024
    characters and a blob's metadata at 8 KiB)."""
    part = quote(value, safe="")
    if not part.strip("."):
        # "." and ".." are dot segments HTTP clients remove after the request is signed;
        # quote() never writes %2E, so this stays one-to-one.
        return part.replace(".", "%2E")
    if len(part) > _MAX_NAME_PART:  # long non-ASCII IDs: up to 12 characters each
        # quote() never writes "=", so no other ID encodes to this.
        return "=sha256-" + hashlib.sha256(value.encode()).hexdigest()
    return part


def blob_name(message: Message) -> str:
    date = message.message_date or "undated"
    return f"{date}/{_name_part(message.interface_id)}/{_name_part(message.transaction_id)}.json"


class BlobInbox:
    """Use :meth:`connect` (or :meth:`from_settings`); ``client_options`` go to both SDK
    clients (e.g. ``read_timeout``, ``retry_total``, ``raw_response_hook``)."""

    def __init__(self, container_client, queue_client) -> None:
        self._container = container_client
        self._queue = queue_client

    @classmethod
    def from_settings(cls, settings: Settings, **client_options) -> BlobInbox:
        return cls.connect(settings.inbox_storage, settings.inbox_container,
                           settings.inbox_queue, **client_options)

    @classmethod
    def connect(cls, storage: str, container: str, queue: str, *, timeout: float = 10.0,
                retries: int = 2, **client_options) -> BlobInbox:
        """``storage``: a connection string, or a blob account URL (managed identity)."""
        from azure.storage.blob import ContainerClient
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        options = {"connection_timeout": min(timeout, 5.0), "read_timeout": timeout,
                   "retry_total": retries, **client_options}
        encode = TextBase64EncodePolicy()  # what the Functions queue trigger expects
        if storage.lower().startswith(("https://", "http://")):
            if ".blob." not in storage:
                raise DipEdgeError(CONFIG_INVALID(
                    "INBOX_STORAGE: an account URL must be the blob endpoint "
                    "(https://<account>.blob.core.windows.net)"))
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
            container_client = ContainerClient(storage, container, credential=credential,
                                               **options)
            queue_client = QueueClient(storage.replace(".blob.", ".queue.", 1), queue,
                                       credential=credential, message_encode_policy=encode,
                                       **options)
        else:
            try:
                container_client = ContainerClient.from_connection_string(
                    storage, container, **options)
                queue_client = QueueClient.from_connection_string(
                    storage, queue, message_encode_policy=encode, **options)
            except ValueError:
                raise DipEdgeError(CONFIG_INVALID(
                    "INBOX_STORAGE: not a valid storage connection string")) from None
        return cls(container_client, queue_client)

    def store(self, messages: Sequence[Message], receipt: Receipt) -> list[bool]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            try:
                return [self._store_one(message, receipt) for message in messages]
            except ResourceNotFoundError:
                # The container or queue is missing (infra creates them, so only on a new
                # local account): create them and store the delivery again, harmlessly,
                # since blob writes are create-only.
                self._create_missing()
                return [self._store_one(message, receipt) for message in messages]
        except AzureError as exc:
            raise _unavailable(exc) from None

    def _store_one(self, message: Message, receipt: Receipt) -> bool:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        name = blob_name(message)
        metadata = _metadata(message, receipt)
        try:
            blob = self._container.upload_blob(
                name, message.raw, overwrite=False, metadata=metadata,
                content_settings=ContentSettings(content_type="application/json"))
            new = True
        except ResourceExistsError:
            blob = self._container.get_blob_client(name)
            metadata = blob.get_blob_properties().metadata
            new = False
            if metadata.get("queued") == "true":
                return new
        pointer = json.dumps({
            "container": self._container.container_name,
            "blob": name,
            "transactionId": message.transaction_id,
            "interfaceId": message.interface_id,
            "channel": unquote(metadata["channel"]) if metadata.get("channel") else None,
            "receivedAt": metadata.get("receivedAt"),
        }, separators=(",", ":"))
        assert len(pointer.encode()) < _POINTER_LIMIT, "queue pointer too large"
        self._queue.send_message(pointer)
        blob.set_blob_metadata({**metadata, "queued": "true"})
        return new

    def _create_missing(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for create in (self._container.create_container, self._queue.create_queue):
            with contextlib.suppress(ResourceExistsError):
                create()

    def list(self, limit: int | None = None) -> list[StoredMessage]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            found = [_stored(b.name, b.metadata or {})
                     for b in self._container.list_blobs(include=["metadata"])]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise _unavailable(exc) from None
        found.sort(key=lambda m: (m.received_at, m.location))
        return found[:limit] if limit is not None else found

    def get(self, transaction_id: str) -> StoredMessage | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        suffix = f"/{_name_part(transaction_id)}.json"
        try:
            for item in self._container.list_blobs():
                if item.name.endswith(suffix):
                    download = self._container.download_blob(item.name)
                    body = download.readall()
                    return _stored(item.name, download.properties.metadata or {}, body)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _unavailable(exc) from None
        return None

    def close(self) -> None:
        self._container.close()
        self._queue.close()


def _metadata(message: Message, receipt: Receipt) -> dict[str, str]:
    # Metadata travels as HTTP headers: ASCII only, so free text is percent-encoded, and
    # an ID too long for the 8 KiB budget is kept as its hash (the body has it whole).
    fields = {
        "transactionId": _name_part(message.transaction_id),
        "interfaceId": _name_part(message.interface_id),
        "publicationId": _name_part(message.publication_id or ""),
        "channel": _name_part(receipt.channel or ""),
        "receivedAt": receipt.received_at,
        "replayIndicator": "true" if message.replay_indicator else "false",
        "clientThumbprint": receipt.client_thumbprint or "",
        "signerThumbprint": receipt.signer_thumbprint or "",
    }
    return {key: value for key, value in fields.items() if value}


def _stored(name: str, metadata: dict[str, str], body: bytes | None = None) -> StoredMessage:
    def text(key: str) -> str | None:
        return unquote(metadata[key]) if metadata.get(key) else None

    return StoredMessage(
        transaction_id=text("transactionId") or "",
        interface_id=text("interfaceId") or "",
        publication_id=text("publicationId"),
        channel=text("channel"),
        received_at=metadata.get("receivedAt", ""),
        replay_indicator=metadata.get("replayIndicator") == "true",
        client_thumbprint=metadata.get("clientThumbprint"),
        signer_thumbprint=metadata.get("signerThumbprint"),
        location=name,
        body=body,
    )


def _unavailable(exc: Exception) -> DipEdgeError:
    # Name the failure by type and status only: SDK messages can carry URLs with SAS tokens.
    status = getattr(exc, "status_code", None)
    detail = f"Blob storage failed ({type(exc).__name__}{f', HTTP {status}' if status else ''})."
    return DipEdgeError(INBOX_UNAVAILABLE(detail), retry_after=30)
