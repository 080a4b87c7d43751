"""Parse a queue message body into Event Grid events (Event Grid or CloudEvents 1.0 schema).

Event Grid writes each event to a Storage queue as base64-encoded JSON; the Functions host
base64-decodes it before the function sees it, and other readers may not. So
:func:`parse_message` accepts raw JSON and base64 JSON, a single event or an array, in
either schema, and raises :class:`EventError` (an ``event.malformed`` finding naming the
missing or bad field) for anything else::

    for event in parse_message(body):
        if event.type == "Microsoft.KeyVault.SecretNewVersionCreated": ...
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.problems import EVENT_MALFORMED, DipEdgeError

# Real events are a few hundred bytes; Storage queue messages are at most 64 KiB.
MAX_MESSAGE_BYTES = 64 * 1024
# Key Vault object versions are 32 hex digits; be generous, but they name report blobs.
_VERSION = re.compile(r"[A-Za-z0-9]{1,64}")
_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,9})?")

EVENT_GRID = "eventgrid"
CLOUD_EVENTS = "cloudevents"


class EventError(DipEdgeError):
    """The message is not an event this service can read (``event.malformed``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(EVENT_MALFORMED(detail))


@dataclass(frozen=True)
class Event:
    """One event, whichever schema it arrived in (CloudEvents ``source`` is ``topic``)."""

    id: str
    type: str
    topic: str
    subject: str
    time: datetime | None
    data: Mapping[str, Any] = field(default_factory=dict)
    schema: str = EVENT_GRID

    def summary(self) -> dict[str, Any]:
        """JSON-ready identification of the event, for reports and logs."""
        return {"id": self.id, "type": self.type, "subject": self.subject, "topic": self.topic,
                "time": self.time.isoformat() if self.time else None, "schema": self.schema}


@dataclass(frozen=True)
class KeyVaultObject:
    """The Key Vault object a ``Microsoft.KeyVault.*`` event is about."""

    vault_host: str | None  # e.g. "myvault.vault.azure.net", from data.Id
    kind: str  # "Secret", "Certificate" or "Key"
    name: str
    version: str | None
    expires: datetime | None  # data.EXP (epoch seconds), when present
    not_before: datetime | None = None  # data.NBF


@dataclass(frozen=True)
class BlobRef:
    """The blob a ``Microsoft.Storage.BlobCreated`` event is about."""

    container: str
    name: str
    etag: str | None
    content_length: int | None
    url: str | None


def decode_body(body: bytes | str) -> Any:
    """The JSON document in a queue message body, raw or base64-encoded."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise EventError(f"the message is {len(raw)} bytes; a queue message holds at most "
                         f"{MAX_MESSAGE_BYTES}")
    text = raw.strip().removeprefix(b"\xef\xbb\xbf").strip()
    if not text:
        raise EventError("the message is empty")
    if text[:1] not in (b"{", b"["):
        # base64 never starts with "{" or "[", so the two forms cannot be confused.
        try:
            text = base64.b64decode(text, validate=True).strip()
        except (binascii.Error, ValueError):
            raise EventError("the message is neither JSON nor base64-encoded JSON") from None
    try:
        document = json.loads(text)
        # JSON escapes can spell lone surrogates; such text cannot name a blob or a secret.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"the message is not valid JSON ({type(exc).__name__} at "
                         f"position {getattr(exc, 'pos', 0)})") from None
    except UnicodeEncodeError:
        raise EventError("the message is not valid Unicode text (a lone surrogate escape)"
                         ) from None
    except RecursionError:
        raise EventError("the message's JSON is nested too deeply") from None
    return document


def parse_message(body: bytes | str) -> list[Event]:
    """Every event in a queue message body; raises :class:`EventError`."""
    document = decode_body(body)
    if isinstance(document, list):
        if not document:
            raise EventError("the message is an empty array of events")
        return [parse_event(item, index=i) for i, item in enumerate(document)]
    return [parse_event(document)]


def parse_event(document: Any, *, index: int | None = None) -> Event:
    """One event object in either schema; raises :class:`EventError`."""
    where = f"event [{index}]" if index is not None else "the event"
    if not isinstance(document, dict):
        raise EventError(f"{where} is a JSON {type(document).__name__}, not an object")
    if "specversion" in document:
        return _cloud_event(document, where)
    if "eventType" in document:
        return _event_grid_event(document, where)
    raise EventError(f"{where} has neither 'eventType' (Event Grid schema) nor "
                     f"'specversion' (CloudEvents schema)")


def _event_grid_event(doc: dict, where: str) -> Event:
    return Event(
        id=_text(doc, "id", where),
        type=_text(doc, "eventType", where),
        topic=_text(doc, "topic", where),
        subject=_text(doc, "subject", where),
        time=_time(doc, "eventTime", where, required=True),
        data=_data(doc, "data", where, required=True),
        schema=EVENT_GRID,
    )


def _cloud_event(doc: dict, where: str) -> Event:
    version = doc.get("specversion")
    if version != "1.0":
        raise EventError(f"{where} has specversion {version!r}; only CloudEvents 1.0 is read")
    if "data_base64" in doc:
        raise EventError(f"{where} carries binary data_base64; Azure system events carry "
                         f"JSON 'data'")
    return Event(
        id=_text(doc, "id", where),
        type=_text(doc, "type", where),
        topic=_text(doc, "source", where),
        subject=_text(doc, "subject", where, required=False),
        time=_time(doc, "time", where, required=False),
        data=_data(doc, "data", where, required=False),
        schema=CLOUD_EVENTS,
    )


def _text(doc: Mapping, key: str, where: str, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise EventError(f"{where} is missing the required field '{key}'")
        return ""
    if not isinstance(value, str):
        raise EventError(f"{where} field '{key}' must be a string, not a "
                         f"{type(value).__name__}")
    return value


def _time(doc: Mapping, key: str, where: str, *, required: bool) -> datetime | None:
    value = _text(doc, key, where, required=required)
    if not value:
        return None
    try:
        # Event Grid writes up to 7 fractional digits; fromisoformat reads at most 6.
        head, dot, rest = value.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            value = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"{where} field '{key}' is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise EventError(f"{where} field '{key}' has no time zone: {value[:40]!r}")
    return parsed


def _data(doc: Mapping, key: str, where: str, *, required: bool) -> Mapping[str, Any]:
    if key not in doc or doc[key] is None:
        if required:
            raise EventError(f"{where} is missing the required field '{key}'")
        return {}
    value = doc[key]
    if not isinstance(value, dict):
        raise EventError(f"{where} field '{key}' must be an object, not a "
                         f"{type(value).__name__}")
    return value


def key_vault_object(event: Event) -> KeyVaultObject:
    """What a Key Vault event names: ``data.Id`` is canonical, the other fields back it up.

    Microsoft's samples show keys with stray spaces ("ObjectName ") and values with
    leading spaces, so keys and values are stripped before use.
    """
    data = {str(k).strip(): v.strip() if isinstance(v, str) else v for k, v in event.data.items()}
    kind = str(data.get("ObjectType") or "").strip()
    name = str(data.get("ObjectName") or "")
    version = str(data.get("Version") or "") or None
    host = None
    if isinstance(data.get("Id"), str) and data["Id"]:
        parts = urlsplit(data["Id"])
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if parts.scheme != "https" or not parts.hostname or len(segments) < 2:
            raise EventError(f"the event's data.Id is not a Key Vault object URL: "
                             f"{data['Id'][:120]!r}")
        host = parts.hostname.lower()
        collection, name = segments[0], segments[1]
        version = segments[2] if len(segments) > 2 else version
        kind = kind or {"secrets": "Secret", "certificates": "Certificate",
                        "keys": "Key"}.get(collection, "")
    if version is not None and not _VERSION.fullmatch(version):
        raise EventError(f"the event names {version[:40]!r}, which is not a Key Vault "
                         "version")
    name = name or event.subject
    if not name:
        raise EventError("the Key Vault event names no object (data.Id, data.ObjectName and "
                         "subject are all empty)")
    if not kind:
        suffix = event.type.removeprefix("Microsoft.KeyVault.")
        kind = next((k for k in ("Secret", "Certificate", "Key") if suffix.startswith(k)), "")
    return KeyVaultObject(host, kind, name, version, _epoch(data.get("EXP"), "EXP"),
                          _epoch(data.get("NBF"), "NBF"))


def _epoch(value: Any, key: str) -> datetime | None:
    """Epoch seconds as a number (what Key Vault sends) or a numeric string (what
    Microsoft's documentation samples show: ``"NBF": "1559081980"``)."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"the event's data.{key} must be epoch seconds (a number, or a "
                         f"string of digits), not {value!r:.40}")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise EventError(f"the event's data.{key} is out of range: {value!r:.40}") from None


def blob_ref(event: Event) -> BlobRef:
    """The container and blob a Storage event names, from its subject."""
    prefix = "/blobServices/default/containers/"
    subject = event.subject
    container, sep, name = subject.removeprefix(prefix).partition("/blobs/")
    if not subject.startswith(prefix) or not sep or not container or not name:
        raise EventError(f"the Storage event's subject does not name a blob: {subject[:200]!r}")
    length = event.data.get("contentLength")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
        raise EventError(f"the event's data.contentLength must be a whole number, not "
                         f"{length!r:.40}")
    etag = event.data.get("eTag")
    url = event.data.get("url")
    return BlobRef(container, name, etag if isinstance(etag, str) and etag else None, length,
                   url if isinstance(url, str) else None)
