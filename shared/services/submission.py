"""Read a credential submission from an HTTP request body.

Two shapes are accepted (DESIGN.md §3):

* ``application/json``: ``{"apiKey", "apiSecret", "pfx" (base64), "pfxPassword"}``;
* ``multipart/form-data``: the same field names, ``pfx`` as a file part (raw bytes).

:func:`parse_submission` raises ``DipEdgeError`` with ``request.too_large``,
``request.unsupported_media_type`` or ``request.malformed`` when the body is not a
submission at all. Problems with the *values* (a ``pfx`` that is not base64) are returned
as findings, to be reported with every other finding.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message

from shared.problems import (
    PFX_NOT_PKCS12,
    REQUEST_MALFORMED,
    REQUEST_TOO_LARGE,
    REQUEST_UNSUPPORTED_MEDIA_TYPE,
    DipEdgeError,
    Finding,
)
from shared.web import Request

FIELDS = ("apiKey", "apiSecret", "pfx", "pfxPassword")
MAX_PARTS = 16
# The email parser reading header parameters is quadratic: a 2 MB part head costs ~30 s.
MAX_HEADER_BYTES = 8 * 1024
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")  # RFC 2046


@dataclass(frozen=True)
class Submission:
    """The submitted values; ``None`` when a field was absent. ``repr`` shows none of them."""

    api_key: str | None = field(repr=False)
    api_secret: str | None = field(repr=False)
    pfx: bytes | None = field(repr=False)
    pfx_password: bytes | None = field(repr=False)
    findings: tuple[Finding, ...] = ()


def parse_submission(request: Request, max_bytes: int) -> Submission:
    declared = request.header("content-length")
    if len(request.body) > max_bytes or (declared and declared.isdigit()
                                         and int(declared) > max_bytes):
        raise DipEdgeError(REQUEST_TOO_LARGE(
            f"A credential submission may be at most {max_bytes} bytes."))
    media_type = request.media_type
    if media_type == "application/json":
        return _from_json(request.body)
    if media_type == "multipart/form-data":
        return _from_multipart(request.body, request.header("content-type") or "")
    raise DipEdgeError(REQUEST_UNSUPPORTED_MEDIA_TYPE(
        f"Send application/json or multipart/form-data, not {media_type or 'no Content-Type'}."))


def _from_json(body: bytes) -> Submission:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise DipEdgeError(REQUEST_MALFORMED("The body is not valid JSON.")) from None
    if not isinstance(document, dict):
        raise DipEdgeError(REQUEST_MALFORMED("The body must be a JSON object."))
    for name in FIELDS:
        if document.get(name) is not None and not isinstance(document[name], str):
            raise DipEdgeError(REQUEST_MALFORMED(f"The field {name} must be a string."))
        try:  # JSON escapes can spell lone surrogates, which no UTF-8 byte string holds
            (document.get(name) or "").encode("utf-8")
        except UnicodeEncodeError:
            raise DipEdgeError(REQUEST_MALFORMED(
                f"The field {name} is not valid Unicode text.")) from None
    findings: list[Finding] = []
    pfx = None
    if document.get("pfx") is not None:
        try:
            pfx = base64.b64decode("".join(document["pfx"].split()), validate=True)
        except (binascii.Error, ValueError):
            findings.append(PFX_NOT_PKCS12(
                "The pfx field is not valid base64; send the PFX file base64-encoded."))
    return Submission(
        api_key=document.get("apiKey"),
        api_secret=document.get("apiSecret"),
        pfx=pfx,
        pfx_password=_encode(document.get("pfxPassword")),
        findings=tuple(findings),
    )


def _from_multipart(body: bytes, content_type: str) -> Submission:
    boundary = _param(content_type, "content-type", "boundary")
    if not boundary or not _BOUNDARY.fullmatch(boundary):
        raise DipEdgeError(REQUEST_MALFORMED("The multipart Content-Type has no valid boundary."))
    parts = _parts(body, boundary.encode("latin-1"))
    texts: dict[str, str] = {}
    for name in ("apiKey", "apiSecret", "pfxPassword"):
        if name in parts:
            try:
                texts[name] = parts[name].decode("utf-8")
            except UnicodeDecodeError:
                raise DipEdgeError(REQUEST_MALFORMED(
                    f"The field {name} is not UTF-8 text.")) from None
    return Submission(
        api_key=texts.get("apiKey"),
        api_secret=texts.get("apiSecret"),
        pfx=parts.get("pfx"),
        pfx_password=_encode(texts.get("pfxPassword")),
    )


def _parts(body: bytes, boundary: bytes) -> Mapping[str, bytes]:
    """Form fields by name (RFC 7578). Unknown fields are skipped; duplicates refused."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        position = len(delimiter)
    else:  # skip a preamble
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise DipEdgeError(REQUEST_MALFORMED("The multipart body has no boundary line."))
        position = found + 2 + len(delimiter)
    fields: dict[str, bytes] = {}
    for _ in range(MAX_PARTS + 1):
        if body[position:position + 2] == b"--":
            return fields
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise DipEdgeError(REQUEST_MALFORMED("A multipart boundary line is malformed."))
        end = body.find(b"\r\n" + delimiter, line_end)
        if end < 0:
            raise DipEdgeError(REQUEST_MALFORMED("The multipart body is not closed."))
        name, content = _part(body[line_end + 2:end])
        if name in fields:
            raise DipEdgeError(REQUEST_MALFORMED(f"The field {name} is given twice."))
        if name in FIELDS:
            fields[name] = content
        position = end + 2 + len(delimiter)
    raise DipEdgeError(REQUEST_MALFORMED(f"A submission has at most {MAX_PARTS} parts."))


def _part(raw: bytes) -> tuple[str, bytes]:
    head, separator, content = raw.partition(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):  # a part without headers
        head, separator, content = b"", b"\r\n", raw[2:]
    if not separator:
        raise DipEdgeError(REQUEST_MALFORMED("A multipart part has no header end."))
    if len(head) > MAX_HEADER_BYTES:
        raise DipEdgeError(REQUEST_MALFORMED(
            f"A multipart part's headers may be at most {MAX_HEADER_BYTES} bytes."))
    disposition = ""
    for line in head.split(b"\r\n"):
        key, colon, value = line.partition(b":")
        if not colon:
            raise DipEdgeError(REQUEST_MALFORMED("A multipart part header is malformed."))
        if key.strip().lower() == b"content-disposition":
            disposition = value.decode("utf-8", "replace").strip()
    name = _param(disposition, "content-disposition", "name")
    if not disposition.lower().startswith("form-data") or not name:
        raise DipEdgeError(REQUEST_MALFORMED(
            "Every multipart part needs Content-Disposition: form-data with a name."))
    return name, content


def _param(value: str, header: str, name: str) -> str | None:
    if len(value) > MAX_HEADER_BYTES:
        raise DipEdgeError(REQUEST_MALFORMED(
            f"The {header} header may be at most {MAX_HEADER_BYTES} characters."))
    message = Message()
    message[header] = value
    found = message.get_param(name, header=header)
    return found if isinstance(found, str) else None


def _encode(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None
