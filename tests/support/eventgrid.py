"""Event Grid as a test double for Azure: events shaped as Event Grid writes them, put on a
Storage queue as Event Grid does (base64 JSON), and delivered to the ``events`` function
as the Functions host does (base64-decoded body, dequeue count).

Shapes follow ``reference/azure.md`` §7: Key Vault events carry ``data`` = ``{Id,
VaultName, ObjectType, ObjectName, Version, NBF, EXP}``; Storage ``BlobCreated`` carries
``subject`` = ``/blobServices/default/containers/<c>/blobs/<name>`` and ``data`` with
``eTag``, ``contentLength``, ``url``...
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import azure.functions.queue as queue_types

from tests.support.functions import user_function

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"


def key_vault_event(event_type: str, name: str, version: str, *, vault_url: str,
                    object_type: str = "Secret", exp: int | None = None,
                    schema: str = "eventgrid", event_id: str | None = None) -> dict:
    host = vault_url.split("//", 1)[1].split("/", 1)[0]
    vault_name = host.split(".")[0]
    collection = "certificates" if object_type == "Certificate" else "secrets"
    data = {"Id": f"https://{host}/{collection}/{name}/{version}", "VaultName": vault_name,
            "ObjectType": object_type, "ObjectName": name, "Version": version,
            "NBF": None, "EXP": exp}
    return _envelope(f"Microsoft.KeyVault.{event_type}", name, data,
                     topic=f"{SUBSCRIPTION}/providers/Microsoft.KeyVault/vaults/{vault_name}",
                     schema=schema, event_id=event_id, data_version="1")


def blob_created_event(container: str, blob: str, *, etag: str, length: int,
                       account_url: str = "http://127.0.0.1:10000/devstoreaccount1",
                       schema: str = "eventgrid", event_id: str | None = None) -> dict:
    data = {"api": "PutBlob", "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()), "eTag": etag.strip('"'),
            "contentType": "application/x-pkcs12", "contentLength": length,
            "blobType": "BlockBlob", "url": f"{account_url}/{container}/{blob}",
            "sequencer": "00000000000000000000000000005a5e0000000000000001",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())}}
    return _envelope("Microsoft.Storage.BlobCreated",
                     f"/blobServices/default/containers/{container}/blobs/{blob}", data,
                     topic=f"{SUBSCRIPTION}/providers/Microsoft.Storage/storageAccounts/acct",
                     schema=schema, event_id=event_id, data_version="")


def _envelope(event_type: str, subject: str, data: dict, *, topic: str, schema: str,
              event_id: str | None, data_version: str) -> dict:
    event_id = event_id or str(uuid.uuid4())
    # Event Grid writes seven fractional digits.
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z"
    if schema == "cloudevents":
        return {"specversion": "1.0", "id": event_id, "source": topic, "type": event_type,
                "subject": subject, "time": when, "datacontenttype": "application/json",
                "data": data}
    return {"id": event_id, "topic": topic, "subject": subject, "eventType": event_type,
            "eventTime": when, "data": data, "dataVersion": data_version,
            "metadataVersion": "1"}


def queue_clients(connection_string: str, queue: str):
    """(sender as Event Grid: base64 encode policy; raw receiver as the host reads)."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    sender = QueueClient.from_connection_string(connection_string, queue,
                                                message_encode_policy=TextBase64EncodePolicy())
    receiver = QueueClient.from_connection_string(connection_string, queue)
    return sender, receiver


def enqueue(connection_string: str, queue: str, *events: dict, as_array: bool = False) -> None:
    """Put events on the queue as Event Grid does: JSON, base64-encoded."""
    from azure.core.exceptions import ResourceExistsError

    sender, _ = queue_clients(connection_string, queue)
    try:
        sender.create_queue()
    except ResourceExistsError:
        pass
    if as_array:
        sender.send_message(json.dumps(list(events)))
    else:
        for event in events:
            sender.send_message(json.dumps(event))


def receive_one(connection_string: str, queue: str, *, visibility_timeout: int = 1):
    _, receiver = queue_clients(connection_string, queue)
    messages = list(receiver.receive_messages(max_messages=1,
                                              visibility_timeout=visibility_timeout))
    return messages[0] if messages else None


def deliver(connection_string: str, queue: str, *, dequeue_count: int | None = None,
            delete: bool = True):
    """Receive one message and run the ``events`` function on it as the host would: delete
    it when the function returns, make it visible again when it raises."""
    _, receiver = queue_clients(connection_string, queue)
    message = receive_one(connection_string, queue)
    assert message is not None, "no message on the queue"
    body = base64.b64decode(message.content)  # the host's default messageEncoding
    request = queue_types.QueueMessage(
        id=message.id, body=body,
        dequeue_count=dequeue_count if dequeue_count is not None else message.dequeue_count,
        pop_receipt=message.pop_receipt)
    try:
        user_function("events")(request)
    except Exception:
        # The host makes the message visible again after host.json's visibilityTimeout;
        # here at once, so the test can deliver it again.
        receiver.update_message(message, visibility_timeout=0)
        raise
    if delete:
        receiver.delete_message(message)
    return message


def poison_messages(connection_string: str, queue: str) -> list[dict]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    client = QueueClient.from_connection_string(connection_string, f"{queue}-poison",
                                                message_decode_policy=TextBase64DecodePolicy())
    try:
        return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []
