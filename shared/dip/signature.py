"""The DIP message signature: sign a request like the DIP does, and verify one.

Four headers (as seen in public participant code, see ``reference/dip.md`` §4.2):

* ``X-DIP-Signature-Date`` — UTC ISO-8601 with milliseconds and ``Z``;
* ``X-DIP-Content-Hash`` — base64 of the SHA-256 of the exact body bytes;
* ``X-DIP-Signature-Certificate`` — base64 of the signer's PEM certificate;
* ``X-DIP-Signature`` — base64 RSASSA-PKCS1-v1_5/SHA-256 over
  ``METHOD;lower-cased full URL;date;content-hash``.

The scheme's details live in the constants and :func:`canonical_string` below, so a
change in the DIP's specification is a change here only. Verify with a
:class:`SignatureVerifier` built once::

    verifier = SignatureVerifier.from_settings(settings)
    verdict = verifier.verify("POST", request.url, request.headers, request.body)
    # raises DipEdgeError(signature.*); verdict.signed is False when mode allows unsigned
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.certs.report import CertificateFacts
from shared.certs.trust import TrustPolicy
from shared.problems import (
    CLIENTCERT_MALFORMED,
    CLIENTCERT_MISSING,
    SIGNATURE_CONTENT_HASH_MISMATCH,
    SIGNATURE_INVALID,
    SIGNATURE_MALFORMED,
    SIGNATURE_MISSING,
    SIGNATURE_STALE,
    SIGNATURE_UNTRUSTED_CERTIFICATE,
    DipEdgeError,
)
from shared.settings import Setting, Settings

SIGNATURE_HEADERS = ("X-DIP-Signature-Date", "X-DIP-Content-Hash",
                     "X-DIP-Signature-Certificate", "X-DIP-Signature")
DATE_HEADER, CONTENT_HASH_HEADER, CERTIFICATE_HEADER, SIGNATURE_HEADER = SIGNATURE_HEADERS
MODES = ("required", "optional", "off")
FIELD_SEPARATOR = ";"
SIGNATURE_HASH = hashes.SHA256
MAX_CERTIFICATE_HEADER_CHARS = 32 * 1024  # base64 of one PEM certificate: 2-4 KB in practice
MAX_SIGNATURE_HEADER_CHARS = 2048  # RSA-8192 is 1366 characters of base64
SIGNATURE_BYTES = (128, 1024)  # RSA-1024 to RSA-8192: anything else is not a signature
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_SHA256_BYTES = 32
_PEM_BEGIN, _PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def format_date(at: dt.datetime) -> str:
    """``2025-06-27T14:29:09.061Z`` (JavaScript's ``toISOString()``)."""
    at = at.astimezone(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def canonical_string(method: str, url: str, date: str, body_hash: str) -> bytes:
    """What is signed: ``METHOD;lower-cased full URL;date;content-hash`` in UTF-8."""
    return FIELD_SEPARATOR.join((method.upper(), url.lower(), date, body_hash)).encode()


def sign_request(method: str, url: str, body: bytes, *, private_key: rsa.RSAPrivateKey,
                 certificate: x509.Certificate,
                 at: dt.datetime | None = None) -> dict[str, str]:
    """The four ``X-DIP-*`` headers for a request, signed with an RSA ``private_key``."""
    date = format_date(at or dt.datetime.now(dt.UTC))
    body_hash = content_hash(body)
    signature = private_key.sign(canonical_string(method, url, date, body_hash),
                                 padding.PKCS1v15(), SIGNATURE_HASH())
    pem = certificate.public_bytes(serialization.Encoding.PEM).replace(b"\r\n", b"\n")
    return {
        DATE_HEADER: date,
        CONTENT_HASH_HEADER: body_hash,
        CERTIFICATE_HEADER: base64.b64encode(pem).decode(),
        SIGNATURE_HEADER: base64.b64encode(signature).decode(),
    }


@dataclass(frozen=True)
class SignatureVerdict:
    signed: bool  # False when the mode is optional/off and the request carried no signature
    signer: CertificateFacts | None


_UNSIGNED = SignatureVerdict(False, None)


def _b64(value: str, what: str, limit: int) -> bytes:
    if len(value) > limit:
        raise DipEdgeError(SIGNATURE_MALFORMED(f"{what} is too long"))
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DipEdgeError(SIGNATURE_MALFORMED(f"{what} is not base64")) from None


def _certificate_der(value: str) -> bytes:
    """The DER inside X-DIP-Signature-Certificate (base64 of PEM; base64 of DER tolerated)."""
    decoded = _b64(value, CERTIFICATE_HEADER, MAX_CERTIFICATE_HEADER_CHARS)
    if not decoded.lstrip().startswith(b"-----BEGIN"):
        return decoded
    start = decoded.find(_PEM_BEGIN)
    end = decoded.find(_PEM_END, start)
    if start < 0 or end < 0:
        raise DipEdgeError(SIGNATURE_MALFORMED(f"{CERTIFICATE_HEADER} is not a PEM certificate"))
    try:
        return base64.b64decode(b"".join(decoded[start + len(_PEM_BEGIN):end].split()),
                                validate=True)
    except (binascii.Error, ValueError):
        raise DipEdgeError(SIGNATURE_MALFORMED(
            f"{CERTIFICATE_HEADER} holds a PEM certificate that is not base64")) from None


class SignatureVerifier:
    """The webhook's signature check: mode, skew window, signer policy and public URL."""

    # Its own settings; the signer policy (DIP_SIGNER_*) checks its own when built.
    SETTINGS: ClassVar[tuple[Setting[Any], ...]] = (
        Settings.dip_signature_mode, Settings.dip_signature_max_skew_seconds,
        Settings.dip_public_base_url)

    def __init__(self, policy: TrustPolicy | None, *, mode: str, max_skew_seconds: int,
                 public_base_url: str | None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if policy is None and mode != "off":
            raise ValueError("a signer certificate policy is needed unless the mode is off")
        self.policy = policy
        self.mode = mode
        self.max_skew = dt.timedelta(seconds=max_skew_seconds)
        self.public_base_url = public_base_url
        base = urlsplit(public_base_url) if public_base_url else None
        self._origin = f"{base.scheme}://{base.netloc}" if base else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SignatureVerifier:
        """From DIP_SIGNATURE_MODE, DIP_SIGNATURE_MAX_SKEW_SECONDS, DIP_PUBLIC_BASE_URL and
        the signer policy (DIP_SIGNER_*); ``config.invalid`` on bad settings."""
        settings.require(*cls.SETTINGS)
        mode = settings.dip_signature_mode
        policy = None if mode == "off" else TrustPolicy.for_signer(settings)
        return cls(policy, mode=mode, max_skew_seconds=settings.dip_signature_max_skew_seconds,
                   public_base_url=settings.dip_public_base_url)

    def signed_url(self, url: str) -> str:
        """The URL the DIP called: the public origin (when configured) + path and query."""
        if self._origin is None:
            return url
        parts = urlsplit(url)
        return self._origin + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def verify(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
               *, now: dt.datetime | None = None) -> SignatureVerdict:
        """Check the signature of a request (``headers`` keys lower-cased).

        Raises ``DipEdgeError`` with, in this order: ``signature.missing``,
        ``signature.malformed``, ``signature.content_hash_mismatch``, ``signature.stale``,
        ``signature.untrusted_certificate``, ``signature.invalid``.
        """
        if self.mode == "off":
            return _UNSIGNED
        values = [headers.get(name.lower()) for name in SIGNATURE_HEADERS]
        if all(v is None for v in values):
            if self.mode == "optional":
                return _UNSIGNED
            raise DipEdgeError(SIGNATURE_MISSING(
                "the request carries none of the signature headers "
                f"({', '.join(SIGNATURE_HEADERS)})"))
        missing = [n for n, v in zip(SIGNATURE_HEADERS, values, strict=True) if not v]
        if missing:
            raise DipEdgeError(SIGNATURE_MALFORMED(
                f"signature header(s) missing or empty: {', '.join(missing)}"))
        date, body_hash, cert_value, signature_value = ((v or "").strip() for v in values)

        if not _DATE.fullmatch(date):
            raise DipEdgeError(SIGNATURE_MALFORMED(
                f"{DATE_HEADER} is not a UTC ISO-8601 time such as 2025-06-27T14:29:09.061Z"))
        try:
            signed_at = dt.datetime.fromisoformat(date)
        except ValueError:
            raise DipEdgeError(SIGNATURE_MALFORMED(f"{DATE_HEADER} is not a valid date")) from None
        claimed = _b64(body_hash, CONTENT_HASH_HEADER, 64)
        if len(claimed) != _SHA256_BYTES:
            raise DipEdgeError(SIGNATURE_MALFORMED(
                f"{CONTENT_HASH_HEADER} is not a SHA-256 digest"))
        signature = _b64(signature_value, SIGNATURE_HEADER, MAX_SIGNATURE_HEADER_CHARS)
        if not SIGNATURE_BYTES[0] <= len(signature) <= SIGNATURE_BYTES[1]:
            raise DipEdgeError(SIGNATURE_MALFORMED(
                f"{SIGNATURE_HEADER} is {len(signature)} bytes, not an RSA signature"))
        if self.policy is None:  # the constructor demands one unless the mode is off
            raise RuntimeError("no signer certificate policy")
        signer = self.policy.check_text(cert_value, _certificate_der)
        if not signer.accepted and signer.errors[0].is_(CLIENTCERT_MALFORMED, CLIENTCERT_MISSING):
            raise DipEdgeError(SIGNATURE_MALFORMED(
                f"{CERTIFICATE_HEADER}: {signer.errors[0].detail}"))

        if not hmac.compare_digest(hashlib.sha256(body).digest(), claimed):
            raise DipEdgeError(SIGNATURE_CONTENT_HASH_MISMATCH(
                f"{CONTENT_HASH_HEADER} does not match the SHA-256 of the body"))
        now = now or dt.datetime.now(dt.UTC)
        skew = (now - signed_at).total_seconds()
        if abs(skew) > self.max_skew.total_seconds():
            when = "in the past" if skew > 0 else "in the future"
            raise DipEdgeError(SIGNATURE_STALE(
                f"{DATE_HEADER} is {abs(skew):.0f} s {when}; at most "
                f"{self.max_skew.total_seconds():.0f} s is accepted"))
        if not signer.accepted:
            raise DipEdgeError(SIGNATURE_UNTRUSTED_CERTIFICATE(
                f"{signer.errors[0].detail} [{signer.errors[0].code}]"))

        key = signer.chain[0].public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise DipEdgeError(SIGNATURE_INVALID("the signing certificate's key is not RSA"))
        try:
            key.verify(signature, canonical_string(method, self.signed_url(url), date, body_hash),
                       padding.PKCS1v15(), SIGNATURE_HASH())
        except InvalidSignature:
            raise DipEdgeError(SIGNATURE_INVALID(
                f"{SIGNATURE_HEADER} does not verify with the signing certificate's key over "
                f"{method.upper()} {self.signed_url(url).lower()}")) from None
        return SignatureVerdict(True, signer.certificate)
