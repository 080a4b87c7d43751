"""Why a PFX did not open: the finding to report when ``cryptography`` refuses the bytes.

``cryptography`` answers every failure with "Invalid password or PKCS12 data". This
module tells the cases apart for the person holding the file: another format handed in
by mistake (PEM, DER certificate or key, PKCS#7, ZIP, base64 text), a damaged PKCS#12
structure, malformed integrity (MAC) parameters, an unencrypted certificate that cannot
be parsed, a password that is needed, a password that is wrong. It also counts the
private keys of a PFX that did open (:func:`private_key_count`): ``cryptography`` returns
only the first. It reads structure only (RFC 7292, RFC 9579); it never decrypts.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from itertools import takewhile

from shared.certs.der import (
    CONTEXT_0,
    INTEGER,
    OCTET_STRING,
    SEQUENCE,
    DerError,
    Element,
    read_single,
)
from shared.certs.facts import safe_reason
from shared.problems import CERT_MALFORMED, PFX_NOT_PKCS12, PFX_WRONG_PASSWORD, Finding

_DATA = "1.2.840.113549.1.7.1"
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG_DER = bytes.fromhex("060B2A864886F70D010C0A0102")  # its OID, encoded
_KEY_BAGS = ("1.2.840.113549.1.12.10.1.1", "1.2.840.113549.1.12.10.1.2")  # plain, shrouded
_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
_X509_CERTIFICATE = "1.2.840.113549.1.9.22.1"
_PBMAC1 = "1.2.840.113549.1.5.14"
_PBKDF2 = "1.2.840.113549.1.5.12"
_MAC_DIGESTS = {
    "1.3.14.3.2.26": "SHA-1", "2.16.840.1.101.3.4.2.4": "SHA-224",
    "2.16.840.1.101.3.4.2.1": "SHA-256", "2.16.840.1.101.3.4.2.2": "SHA-384",
    "2.16.840.1.101.3.4.2.3": "SHA-512", "1.2.840.113549.2.5": "MD5",
}
# RFC 9579: the PBMAC1 key is at least 20 octets; no HMAC needs more than 64.
_PBMAC1_KEY_MIN, _PBMAC1_KEY_MAX = 20, 64

_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 #]{1,40})-----")
_EXPORT_HINT = ("combine certificate and key into a PFX, e.g. `openssl pkcs12 -export "
                "-in cert.pem -inkey key.pem -certfile chain.pem -out credentials.pfx`")


class _Malformed(Exception):
    """A structural problem, worded for the report."""


@dataclass(frozen=True)
class _Layout:
    has_mac: bool
    encrypted: bool


def diagnose(data: bytes, *, password_given: bool) -> Finding:
    """The finding for bytes that no password attempt could open."""
    other = _other_format(data)
    if other:
        return PFX_NOT_PKCS12(other)
    try:
        layout = _read_layout(data)
    except _Malformed as exc:
        return PFX_NOT_PKCS12(f"The file is not a usable PKCS#12 (PFX) file: {exc}.")
    except DerError as exc:
        return PFX_NOT_PKCS12(f"The file is not a readable PKCS#12 (PFX) file: {exc}.")
    unparsable = _unparsable_certificate(data)
    if unparsable:  # readable without a password, so not a password problem
        return CERT_MALFORMED(unparsable)
    if layout.has_mac:
        if password_given:
            return PFX_WRONG_PASSWORD(
                "The password is wrong: the PFX's integrity check (MAC) fails with it "
                "(or the file was altered after it was made)."
            )
        return PFX_WRONG_PASSWORD(
            "This PFX is protected by a password: a password is needed, and none was given.")
    if layout.encrypted:
        if password_given:
            return PFX_WRONG_PASSWORD(
                "The PFX's contents could not be decrypted with this password; the file has "
                "no integrity check (MAC) that could tell a wrong password from damage."
            )
        return PFX_WRONG_PASSWORD(
            "This PFX's contents are encrypted, so a password is needed, and none was given."
        )
    return PFX_NOT_PKCS12(
        "The PFX's outer structure is readable but its contents could not be decoded: "
        "the file is damaged or uses an unsupported variant."
    )


def _other_format(data: bytes) -> str | None:
    """Name a non-PKCS#12 format handed in by mistake, with what to do instead."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return ("This is a ZIP archive, not a PFX: extract the .pfx or .p12 file from it "
                "and check that.")
    labels = [m.group(1).decode() for m in _PEM_LABEL.finditer(data[:1_000_000])]
    if labels:
        return _describe_pem(labels)
    if _is_base64_der(data):
        return ("This is base64 text, not the binary PFX: decode it first "
                "(e.g. `base64 -d credentials.txt > credentials.pfx`).")
    if data[:1] == bytes([SEQUENCE]):
        return _describe_der(data)
    if _looks_like_text(data):
        return "This is a text file, not a PFX (PKCS#12 files are binary)."
    return None


def _describe_pem(labels: list[str]) -> str:
    kinds = sorted(set(labels))
    has_key = any("PRIVATE KEY" in k for k in kinds)
    has_cert = "CERTIFICATE" in kinds
    if has_cert and has_key:
        what = "a PEM file holding a certificate and a private key"
    elif has_cert:
        what = "a PEM certificate (it carries no private key)"
    elif has_key:
        what = "a PEM private key (it carries no certificate)"
    else:
        what = "a PEM file (" + ", ".join(kinds) + ")"
    return f"This is {what}, not a PFX: {_EXPORT_HINT}."


def _describe_der(data: bytes) -> str | None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    if _parses(x509.load_der_x509_certificate, data):
        return ("This is a DER-encoded certificate (.cer/.crt), not a PFX: it carries no "
                f"private key; {_EXPORT_HINT}.")
    if _parses(load_der_private_key, data, None, encrypted_ok=True):
        return ("This is a DER-encoded private key, not a PFX: it carries no certificate; "
                f"{_EXPORT_HINT}.")
    if _parses(x509.load_der_x509_csr, data):
        return ("This is a certificate signing request (CSR), not a PFX: the certificate "
                "issued for it, together with its key, makes the PFX.")
    try:
        first = read_single(data).children()[0]
        if first.tag == 0x06 and first.as_oid() == _SIGNED_DATA:
            return ("This is a PKCS#7/CMS file (.p7b/.p7c), which holds certificates only, "
                    f"not a PFX; {_EXPORT_HINT}.")
    except (DerError, IndexError):
        pass
    return None


def _parses(loader, *args, encrypted_ok: bool = False) -> bool:
    try:
        loader(*args)
    except TypeError:  # an encrypted key without its password: still a key
        return encrypted_ok
    except Exception:  # noqa: BLE001 - any refusal means "not this format"
        return False
    return True


def _is_base64_der(data: bytes) -> bool:
    compact = b"".join(data.split())
    if len(compact) < 16 or compact[:1] != b"M":  # base64 of a DER SEQUENCE starts "M"
        return False
    try:
        return base64.b64decode(compact, validate=True)[:1] == bytes([SEQUENCE])
    except (binascii.Error, ValueError):
        return False


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _read_layout(data: bytes) -> _Layout:
    pfx = read_single(data)
    if pfx.tag != SEQUENCE:
        raise _Malformed(f"it does not start with an ASN.1 SEQUENCE (first byte 0x{data[0]:02X})")
    items = pfx.children()
    if not items or items[0].tag != INTEGER:
        raise _Malformed("it has no PKCS#12 version number")
    version = items[0].as_int()
    if version != 3:
        raise _Malformed(f"it says PKCS#12 version {version}; only version 3 exists")
    if len(items) < 2:
        raise _Malformed("it has no authenticated safe (the part holding keys and certificates)")
    encrypted = _read_auth_safe(items[1])
    if len(items) > 3:
        raise _Malformed("it has unexpected elements after the MAC")
    if len(items) == 3:
        _check_mac(items[2])
    return _Layout(has_mac=len(items) == 3, encrypted=encrypted)


def _read_auth_safe(auth_safe) -> bool:
    """Check the authenticated safe; True when some content is password-encrypted."""
    parts = auth_safe.children()
    content_type = parts[0].as_oid() if parts else None
    if content_type == _SIGNED_DATA:
        raise _Malformed("it uses public-key integrity mode (signedData), which is not "
                         "supported; export the PFX with a password instead")
    if content_type != _DATA:
        raise _Malformed(f"its authenticated safe has content type {content_type}, not data")
    if len(parts) < 2 or parts[1].tag != CONTEXT_0:
        raise _Malformed("its authenticated safe is empty (no content)")
    safes = read_single(read_single(parts[1].content).octets())
    if safes.tag != SEQUENCE:
        raise _Malformed("its authenticated safe is not a sequence of content items")
    encrypted = False
    for number, info in enumerate(safes.children(), start=1):
        fields = info.children()
        kind = fields[0].as_oid() if fields else "nothing"
        if kind == _ENVELOPED_DATA:
            raise _Malformed("it uses public-key privacy mode (envelopedData), which is not "
                             "supported; export the PFX with a password instead")
        if kind not in (_DATA, _ENCRYPTED_DATA):
            raise _Malformed(f"item {number} of its authenticated safe has content type {kind}")
        if len(fields) < 2 or fields[1].tag != CONTEXT_0:
            name = "encryptedData" if kind == _ENCRYPTED_DATA else "data"
            raise _Malformed(f"item {number} of its authenticated safe ({name}) has no content")
        # A plain data item may still hold a password-encrypted (shrouded) key bag.
        if kind == _ENCRYPTED_DATA or _SHROUDED_KEY_BAG_DER in fields[1].content:
            encrypted = True
    return encrypted


def _check_mac(mac_data) -> None:
    fields = mac_data.children()
    if not fields or fields[0].tag != SEQUENCE:
        raise _Malformed("its integrity check (MAC) has no digest")
    digest_info = fields[0].children()
    if len(digest_info) != 2 or digest_info[1].tag != OCTET_STRING:
        raise _Malformed("its integrity check (MAC) digest is malformed")
    algorithm = digest_info[0].children()
    oid = algorithm[0].as_oid() if algorithm else None
    if len(fields) > 2 and fields[2].as_int() < 1:
        raise _Malformed("its integrity check (MAC) has a non-positive iteration count")
    if oid == _PBMAC1:
        if len(algorithm) < 2:
            raise _Malformed("its PBMAC1 integrity check has no parameters")
        _check_pbmac1(algorithm[1])
    elif oid not in _MAC_DIGESTS:
        raise _Malformed(f"its integrity check (MAC) uses an unknown algorithm ({oid})")


def _check_pbmac1(params) -> None:
    """RFC 9579 PBMAC1 parameters: PBKDF2 with an octet-string salt and a key length."""
    kdf = params.children()[0].children() if params.children() else []
    if not kdf or kdf[0].as_oid() != _PBKDF2 or len(kdf) < 2:
        raise _Malformed("its PBMAC1 integrity check does not use PBKDF2")
    pbkdf2 = kdf[1].children()
    # salt, iterationCount, keyLength are the leading fields; a missing salt leaves two.
    leading_integers = len(list(takewhile(lambda f: f.tag == INTEGER, pbkdf2)))
    if not pbkdf2 or (pbkdf2[0].tag == INTEGER and leading_integers < 3):
        raise _Malformed("its PBMAC1 key derivation has no salt")
    if pbkdf2[0].tag != OCTET_STRING:
        raise _Malformed("its PBMAC1 salt is not an octet string (RFC 9579 requires one)")
    if len(pbkdf2) < 2 or pbkdf2[1].as_int() < 1:
        raise _Malformed("its PBMAC1 iteration count is missing or not positive")
    if len(pbkdf2) < 3 or pbkdf2[2].tag != INTEGER:
        raise _Malformed("its PBMAC1 key derivation has no key length (RFC 9579 requires one)")
    key_length = pbkdf2[2].as_int()
    if not _PBMAC1_KEY_MIN <= key_length <= _PBMAC1_KEY_MAX:
        raise _Malformed(f"its PBMAC1 key length is {key_length}; it must be between "
                         f"{_PBMAC1_KEY_MIN} and {_PBMAC1_KEY_MAX} octets")


def private_key_count(data: bytes) -> int:
    """How many private keys a PFX holds outside encrypted safes (where Windows, OpenSSL
    and ``cryptography`` put them, shrouded or not); 0 when the structure is unreadable."""
    try:
        return sum(kind in _KEY_BAGS for kind, _ in _plain_bags(data))
    except (DerError, _Malformed, IndexError):
        return 0


def _unparsable_certificate(data: bytes) -> str | None:
    """Why an unencrypted certificate in the PFX cannot be parsed, or None."""
    from cryptography import x509

    try:
        bags = [value for kind, value in _plain_bags(data) if kind == _CERT_BAG]
    except (DerError, _Malformed, IndexError):
        return None
    for number, bag in enumerate(bags, start=1):
        try:
            cert_id, cert_value = bag.children()[:2]
            if cert_id.as_oid() != _X509_CERTIFICATE:
                continue
            certificate = x509.load_der_x509_certificate(read_single(cert_value.content).octets())
            certificate.subject.rfc4514_string()  # names are parsed on first use
            certificate.issuer.rfc4514_string()
        except Exception as exc:  # noqa: BLE001 - any refusal is the finding
            reason = safe_reason(exc)
            return (f"The PFX opened, but certificate {number} in it cannot be parsed "
                    f"({reason}); export it again, or ask the issuer to reissue it.")
    return None


def _plain_bags(data: bytes) -> list[tuple[str, Element]]:
    """(bag type OID, bag value) of every safe bag outside encryptedData (RFC 7292 4.2)."""
    auth_safe = read_single(data).children()[1].children()
    safes = read_single(read_single(auth_safe[1].content).octets())
    bags: list[tuple[str, Element]] = []
    for info in safes.children():
        fields = info.children()
        if fields[0].as_oid() == _DATA:
            _collect_bags(read_single(read_single(fields[1].content).octets()), bags, 0)
    return bags


def _collect_bags(contents: Element, bags: list[tuple[str, Element]], depth: int) -> None:
    if depth > 4:
        raise _Malformed("its safe contents are nested too deeply")
    for bag in contents.children():
        fields = bag.children()
        kind, value = fields[0].as_oid(), read_single(fields[1].content)
        if kind == _SAFE_CONTENTS_BAG:
            _collect_bags(value, bags, depth + 1)
        else:
            bags.append((kind, value))
