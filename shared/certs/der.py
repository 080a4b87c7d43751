"""A tiny, bounds-checked reader of DER/BER tag-length-value elements.

Only for diagnosis: when ``cryptography`` refuses a PFX it says no more than "invalid
password or PKCS12 data", so :mod:`shared.certs.pfx_diagnosis` walks the outer layers
with this reader to say *what* is wrong. It never decrypts or verifies anything.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE, INTEGER, OCTET_STRING, OID = 0x30, 0x02, 0x04, 0x06
CONTEXT_0 = 0xA0
_MAX_DEPTH = 32


class DerError(ValueError):
    """The bytes are not well-formed DER/BER at the point read."""


@dataclass(frozen=True)
class Element:
    tag: int
    content: bytes
    constructed: bool

    def children(self) -> list[Element]:
        if not self.constructed:
            raise DerError(f"expected a constructed element, found tag 0x{self.tag:02X}")
        return read_all(self.content)

    def as_int(self) -> int:
        if self.tag != INTEGER or not self.content:
            raise DerError("expected an INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def as_oid(self) -> str:
        if self.tag != OID or not self.content:
            raise DerError("expected an OBJECT IDENTIFIER")
        arcs, value = [], 0
        for byte in self.content:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        if self.content[-1] & 0x80:
            raise DerError("truncated OBJECT IDENTIFIER")
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])

    def octets(self) -> bytes:
        """An OCTET STRING's bytes; BER's constructed form is joined."""
        if self.tag == OCTET_STRING:
            return self.content
        if self.tag == OCTET_STRING | 0x20:
            return b"".join(child.octets() for child in self.children())
        raise DerError(f"expected an OCTET STRING, found tag 0x{self.tag:02X}")


def read_one(data: bytes, offset: int = 0, depth: int = 0) -> tuple[Element, int]:
    """The element at ``offset`` and the offset just after it."""
    if depth > _MAX_DEPTH:
        raise DerError("nested too deeply")
    if offset + 2 > len(data):
        raise DerError("truncated: ends inside an element header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used in PKCS#12")
    constructed = bool(tag & 0x20)
    first = data[offset + 1]
    pos = offset + 2
    if first == 0x80:  # BER indefinite length: children up to an end-of-contents marker
        if not constructed:
            raise DerError("indefinite length on a primitive element")
        start = pos
        while True:
            if data[pos:pos + 2] == b"\x00\x00":
                return Element(tag, data[start:pos], True), pos + 2
            _, pos = read_one(data, pos, depth + 1)
    if first & 0x80:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise DerError("truncated or absurd length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise DerError(f"truncated: an element claims {length} bytes, {len(data) - pos} remain")
    return Element(tag, data[pos:pos + length], constructed), pos + length


def read_all(data: bytes) -> list[Element]:
    out, pos = [], 0
    while pos < len(data):
        element, pos = read_one(data, pos)
        out.append(element)
    return out


def read_single(data: bytes) -> Element:
    """Exactly one element filling ``data``."""
    element, end = read_one(data)
    if end != len(data):
        raise DerError(f"{len(data) - end} unexpected bytes after the end")
    return element
