"""The Storage account behind EVENTS_STORAGE: clients, uploads and the poison queue.

The connection is found as the Functions host finds the queue trigger's ``EVENTS_STORAGE``:

- ``EVENTS_STORAGE`` = a connection string (Azurite, account keys), or an account URL
  (``https://acct.blob.core.windows.net``; the queue endpoint swaps ``.blob.`` for
  ``.queue.`` and back), used with ``DefaultAzureCredential``;
- else the host's identity-based form, ``EVENTS_STORAGE__blobServiceUri`` and
  ``EVENTS_STORAGE__queueServiceUri`` (or ``EVENTS_STORAGE__accountName``), which is what
  ``infra/`` deploys. These are the host's names, not dip-edge settings, so they are read
  from the environment here.

The Azure SDKs are imported on first use. Every storage failure that may pass (network,
5xx, throttling, refused identity) becomes ``DipEdgeError(storage.unavailable)``, which the
event handler treats as transient.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.problems import CONFIG_INVALID, EVENTS_STORAGE_UNAVAILABLE, DipEdgeError
from shared.settings import Settings
from shared.telemetry import dependency_failure

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient

# Fail within seconds rather than hang a function invocation: the queue retries anyway.
# (The storage SDKs' own default waits 15 s, then 18 s, between tries.)
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20, "retry_total": 2,
                  "initial_backoff": 0.2, "increment_base": 1.2, "random_jitter_range": 0.3}
SECTION = "EVENTS_STORAGE__"


@dataclass(frozen=True)
class Connection:
    """A connection string, or the blob and queue endpoints for identity-based access."""

    connection_string: str | None = None
    blob_url: str = ""  # with no connection string: both endpoints
    queue_url: str = ""


def connection(settings: Settings, environ: Mapping[str, str] | None = None) -> Connection | None:
    """Where the event storage is, or None when nothing is configured."""
    value = settings.events_storage
    if value:
        if "=" in value and not value.lower().startswith("https://"):
            return Connection(connection_string=value)
        return Connection(blob_url=_swap(value, "blob"), queue_url=_swap(value, "queue"))
    env = os.environ if environ is None else environ
    blob, queue = env.get(SECTION + "blobServiceUri"), env.get(SECTION + "queueServiceUri")
    account = env.get(SECTION + "accountName")
    if account:
        blob = blob or f"https://{account}.blob.core.windows.net"
        queue = queue or f"https://{account}.queue.core.windows.net"
    if blob:
        return Connection(blob_url=blob, queue_url=queue or _swap(blob, "queue"))
    if queue:
        return Connection(blob_url=_swap(queue, "blob"), queue_url=queue)
    return None


def configured(settings: Settings) -> bool:
    return connection(settings) is not None


def _required(settings: Settings) -> Connection:
    found = connection(settings)
    if found is None:
        raise DipEdgeError(CONFIG_INVALID(
            "EVENTS_STORAGE is not set (nor EVENTS_STORAGE__blobServiceUri / "
            "__queueServiceUri): event handling needs a Storage account for reports and "
            "uploads"))
    return found


def _swap(url: str, service: str) -> str:
    other = "queue" if service == "blob" else "blob"
    return url.rstrip("/").replace(f".{other}.", f".{service}.")


@lru_cache(maxsize=1)
def _credential():
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@contextlib.contextmanager
def _unusable_setting() -> Iterator[None]:
    """The SDKs refuse a malformed connection string or URL with ValueError: name the
    setting, never its value (a connection string holds the account key)."""
    try:
        yield
    except ValueError:
        raise DipEdgeError(CONFIG_INVALID(
            "EVENTS_STORAGE (or EVENTS_STORAGE__*) is not a usable storage connection "
            "string or account URL")) from None


@lru_cache(maxsize=4)
def _blob_service(found: Connection):
    from azure.storage.blob import BlobServiceClient

    with _unusable_setting():
        if found.connection_string:
            return BlobServiceClient.from_connection_string(found.connection_string,
                                                            **CLIENT_OPTIONS)
        return BlobServiceClient(found.blob_url, credential=_credential(), **CLIENT_OPTIONS)


def blob_service(settings: Settings) -> BlobServiceClient:
    """A cached ``BlobServiceClient`` for the event storage."""
    return _blob_service(_required(settings))


def queue_client(settings: Settings, queue: str, *, base64_messages: bool = True) -> QueueClient:
    """A ``QueueClient``; messages base64-encoded as Event Grid and the Functions host do."""
    from azure.storage.queue import (
        QueueClient,
        TextBase64DecodePolicy,
        TextBase64EncodePolicy,
    )

    found = _required(settings)
    policies: dict[str, Any] = ({"message_encode_policy": TextBase64EncodePolicy(),
                 "message_decode_policy": TextBase64DecodePolicy()} if base64_messages else {})
    with _unusable_setting():
        if found.connection_string:
            return QueueClient.from_connection_string(found.connection_string, queue,
                                                      **policies, **CLIENT_OPTIONS)
        return QueueClient(found.queue_url, queue, credential=_credential(), **policies,
                           **CLIENT_OPTIONS)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn Azure SDK failures that may pass into ``storage.unavailable``."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        dependency_failure("storage", what, EVENTS_STORAGE_UNAVAILABLE.code,
                           error=type(exc).__name__)
        raise DipEdgeError(EVENTS_STORAGE_UNAVAILABLE(
            f"{what}: storage did not answer ({type(exc).__name__})")) from None
    except ClientAuthenticationError as exc:
        dependency_failure("storage", what, EVENTS_STORAGE_UNAVAILABLE.code,
                           status=exc.status_code, error=type(exc).__name__)
        raise DipEdgeError(EVENTS_STORAGE_UNAVAILABLE(
            f"{what}: storage refused the app's identity")) from None
    except HttpResponseError as exc:
        if exc.status_code in (404, 409, 412):
            raise  # the caller decides what a missing or changed resource means
        dependency_failure("storage", what, EVENTS_STORAGE_UNAVAILABLE.code,
                           status=exc.status_code, error=type(exc).__name__)
        raise DipEdgeError(EVENTS_STORAGE_UNAVAILABLE(
            f"{what}: storage answered HTTP {exc.status_code}")) from None


def normalise_etag(etag: str | None) -> str | None:
    """ETags without the quotes the blob service adds (Event Grid sends them bare)."""
    return etag.strip().strip('"') if etag else None


@dataclass(frozen=True)
class Upload:
    """An uploaded blob as found: ``data`` is None when absent, replaced or too large."""

    exists: bool
    size: int = 0
    etag: str | None = None
    data: bytes | None = None


def fetch_upload(settings: Settings, container: str, name: str, *, etag: str | None,
                 max_bytes: int) -> Upload:
    """Download an uploaded blob if it is still the one the event announced and not huge."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    blob = blob_service(settings).get_blob_client(container, name)
    with storage_errors(f"reading upload {container}/{name}"):
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return Upload(exists=False)
        current = normalise_etag(props.etag)
        if (etag and current != normalise_etag(etag)) or props.size > max_bytes:
            return Upload(exists=True, size=props.size, etag=current)
        if props.size == 0:
            return Upload(exists=True, size=0, etag=current, data=b"")
        try:
            # The range stops a blob that grew since get_blob_properties from being read whole.
            data = blob.download_blob(offset=0, length=max_bytes + 1, etag=props.etag,
                                      match_condition=MatchConditions.IfNotModified).readall()
        except ResourceModifiedError:
            return Upload(exists=True, size=props.size, etag=None)
        except ResourceNotFoundError:
            return Upload(exists=False)
    return Upload(exists=True, size=len(data), etag=current, data=data)


def delete_upload(settings: Settings, container: str, name: str, etag: str | None) -> bool:
    """Delete the uploaded blob if it is still that version; False if gone or replaced."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    blob = blob_service(settings).get_blob_client(container, name)
    conditions: dict[str, Any] = ({"etag": f'"{normalise_etag(etag)}"',
                   "match_condition": MatchConditions.IfNotModified} if etag else {})
    with storage_errors(f"deleting upload {container}/{name}"):
        try:
            blob.delete_blob(delete_snapshots="include", **conditions)
        except (ResourceNotFoundError, ResourceModifiedError):
            return False
    return True


def send_message(settings: Settings, queue: str, text: str) -> None:
    """Enqueue ``text`` base64-encoded, creating the queue if needed (as the host does)."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    client = queue_client(settings, queue)
    with storage_errors(f"writing to queue {queue}"):
        try:
            client.send_message(text)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            client.send_message(text)


def decode_queue_text(content: str) -> bytes:
    """What the Functions host passes a queue function: base64-decoded when it is base64."""
    try:
        return base64.b64decode(content, validate=True)
    except ValueError:
        return content.encode()
