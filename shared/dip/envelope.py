"""The body of a DIP delivery: a JSON array of ``{"payload": {"CommonBlock", "CustomBlock"}}``.

``parse_delivery(body)`` turns the exact body bytes into :class:`Message` objects or raises
``DipEdgeError`` with ``message.malformed_json`` (not JSON, not UTF-8, nested too deeply)
or ``message.invalid_envelope`` (the JSON is not a delivery; the detail names the element).

Each message's idempotency key is ``CommonBlock.D0.transactionID``; a message without one
(a sender-side shape) is keyed by the SHA-256 of its canonical payload, so a redelivery of
the same content maps to the same key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, overload

from shared.problems import MESSAGE_INVALID_ENVELOPE, MESSAGE_MALFORMED_JSON, DipEdgeError

MAX_ID_LENGTH = 256
HASH_KEY_PREFIX = "sha256-"
# Control characters, and the unpaired surrogates JSON's \uXXXX escapes let through
# (no UTF-8 store, nor a blob name, can hold one).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Message:
    """One message of a delivery, as the inbox stores it."""

    transaction_id: str  # D0.transactionID, or "sha256-<hex of the canonical payload>"
    interface_id: str  # S0.interfaceID, e.g. "IF-033"
    publication_id: str | None  # D0.publicationID, e.g. "PUB-035"
    replay_indicator: bool  # D0.replayIndicator: the DIP says this may be a re-delivery
    message_date: str | None  # YYYY-MM-DD of D0.transactionTimestamp (or S1.senderTimestamp)
    raw: bytes  # the element exactly as delivered (its UTF-8 bytes within the body)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_DECODE_AT = _DECODER.raw_decode  # one element at an offset: (value, end)
_SPACE = re.compile(r"[ \t\n\r]*")
_WHITESPACE = frozenset(" \t\n\r")
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")  # between two elements, or the end


def _malformed(detail: str) -> DipEdgeError:
    return DipEdgeError(MESSAGE_MALFORMED_JSON(detail))


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"The body is not UTF-8 (invalid byte at offset {exc.start}).") from None


def _skip_space(text: str, at: int) -> int:
    # Most separators carry no or one space: test one character before running the regex.
    space = _SPACE.match(text, at) if text[at:at + 1] in _WHITESPACE else None
    return space.end() if space else at


def _elements(text: str) -> list[tuple[Any, int, int]]:
    """The top-level array's elements, each with its span in ``text``; raises on bad JSON.

    Walking the array element by element keeps each element's bytes as the DIP sent them,
    without re-serialising anything.
    """
    at = _skip_space(text, 0)
    if text[at:at + 1] != "[":
        document = _DECODER.decode(text)  # valid JSON, but not an array? Or not JSON at all.
        raise DipEdgeError(MESSAGE_INVALID_ENVELOPE(
            f"The body must be a JSON array of messages, not a JSON {_kind(document)}."))
    out: list[tuple[Any, int, int]] = []
    at = _skip_space(text, at + 1)
    if text[at:at + 1] == "]":
        at += 1
    else:
        while True:
            value, end = _DECODE_AT(text, at)
            out.append((value, at, end))
            separator = _SEPARATOR.match(text, end)
            if separator is None:
                at = _skip_space(text, _skip_space(text, end) + 1)
                raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
            at = separator.end()
            if separator[1] == "]":
                break
    if _skip_space(text, at) != len(text):
        raise json.JSONDecodeError("Extra data", text, at)
    return out


def _load(body: bytes) -> list[tuple[Any, bytes]]:
    """Each element of the array with its exact bytes."""
    text = _decode(body)
    try:
        elements = _elements(text)
    except RecursionError:
        raise _malformed("The JSON is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise _malformed(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}.") from None
    except ValueError as exc:  # NaN / Infinity
        raise _malformed(f"The body is not valid JSON: {exc}.") from None
    if body.isascii():  # character offsets are byte offsets: slice the body, no re-encoding
        return [(value, body[start:end]) for value, start, end in elements]
    return [(value, text[start:end].encode("utf-8")) for value, start, end in elements]


def _invalid(index: int, detail: str) -> DipEdgeError:
    return DipEdgeError(MESSAGE_INVALID_ENVELOPE(f"Message [{index}]: {detail}"))


@overload
def _object(value: Any, index: int, path: str, *,
            required: Literal[True] = True) -> dict[str, Any]: ...
@overload
def _object(value: Any, index: int, path: str, *,
            required: Literal[False]) -> dict[str, Any] | None: ...
def _object(value: Any, index: int, path: str, *,
            required: bool = True) -> dict[str, Any] | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        kind = "missing" if value is None else f"a JSON {_kind(value)}, not an object"
        raise _invalid(index, f"{path} is {kind}.")
    return value


def is_storable_id(value: str) -> bool:
    """At most ``MAX_ID_LENGTH`` characters, none of them a control character or an
    unpaired surrogate: safe in a log line, a blob name and the SQLite inbox."""
    return len(value) <= MAX_ID_LENGTH and not _CONTROL.search(value)


@overload
def _identifier(value: Any, index: int, path: str, *, required: Literal[True]) -> str: ...
@overload
def _identifier(value: Any, index: int, path: str, *, required: Literal[False]) -> str | None: ...
def _identifier(value: Any, index: int, path: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        kind = "missing" if value is None else f"a JSON {_kind(value)}, not a non-empty string"
        raise _invalid(index, f"{path} is {kind}.")
    if not is_storable_id(value):
        raise _invalid(index, f"{path} is longer than {MAX_ID_LENGTH} characters or holds "
                              "control characters or unpaired surrogates.")
    return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _date(value: Any) -> str | None:
    return value[:10] if isinstance(value, str) and _DATE.match(value) else None


def _message(element: Any, raw: bytes, index: int) -> Message:
    element = _object(element, index, "the element")
    payload = _object(element.get("payload"), index, "payload")
    common = _object(payload.get("CommonBlock"), index, "payload.CommonBlock")
    s0 = _object(common.get("S0"), index, "payload.CommonBlock.S0")
    interface_id = _identifier(s0.get("interfaceID"), index,
                               "payload.CommonBlock.S0.interfaceID", required=True)
    d0 = _object(common.get("D0"), index, "payload.CommonBlock.D0", required=False) or {}
    s1 = _object(common.get("S1"), index, "payload.CommonBlock.S1", required=False) or {}
    transaction_id = _identifier(d0.get("transactionID"), index,
                                 "payload.CommonBlock.D0.transactionID", required=False)
    publication_id = _identifier(d0.get("publicationID"), index,
                                 "payload.CommonBlock.D0.publicationID", required=False)
    replay = d0.get("replayIndicator")
    if replay is not None and not isinstance(replay, bool):
        raise _invalid(index, "payload.CommonBlock.D0.replayIndicator is not a boolean.")
    if transaction_id is None:
        try:
            canonical = canonical_json(payload)
        except ValueError:  # inf (1e400); UnicodeEncodeError: an unpaired surrogate
            raise _invalid(index, "payload.CommonBlock.D0.transactionID is missing and the "
                                  "payload has no canonical form to key it by (a number out "
                                  "of range or an unpaired surrogate).") from None
        transaction_id = HASH_KEY_PREFIX + hashlib.sha256(canonical).hexdigest()
    return Message(
        transaction_id=transaction_id,
        interface_id=interface_id,
        publication_id=publication_id,
        replay_indicator=bool(replay),
        message_date=_date(d0.get("transactionTimestamp")) or _date(s1.get("senderTimestamp")),
        raw=raw,
    )


def parse_delivery(body: bytes) -> tuple[Message, ...]:
    """The messages of a delivery, in order; raises ``DipEdgeError`` (``message.*``)."""
    elements = _load(body)
    if not elements:
        raise DipEdgeError(MESSAGE_INVALID_ENVELOPE("The delivery holds no messages."))
    try:
        return tuple(_message(element, raw, index)
                     for index, (element, raw) in enumerate(elements))
    except RecursionError:  # canonical_json of a payload just under json's own limit
        raise _malformed("The JSON is nested too deeply.") from None
