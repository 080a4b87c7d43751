"""The error catalogue: every code dip-edge reports, and how it is rendered.

A :class:`ProblemType` is one entry of the catalogue (code, title, HTTP status). A
:class:`Finding` is one occurrence of it with a human detail. HTTP functions render
findings as RFC 9457 ``application/problem+json``; the CLI renders them as the
``errors`` / ``warnings`` arrays of its JSON. Details are written by code that knows
no secrets: never put an API secret, password, key or token into one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.web import HttpResult

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    code: str
    title: str
    status: int
    retryable: bool = False

    def __call__(self, detail: str) -> Finding:
        return Finding(self, detail)


@dataclass(frozen=True)
class Finding:
    type: ProblemType
    detail: str

    @property
    def code(self) -> str:
        return self.type.code

    def is_(self, *types: ProblemType) -> bool:
        """Whether this is an occurrence of one of these catalogue entries."""
        return self.type in types

    def to_dict(self) -> dict[str, str]:
        return {"code": self.type.code, "detail": self.detail}


class DipEdgeError(Exception):
    """An error that carries a catalogue finding across layers.

    ``str(err)`` is the finding's detail, which is safe to log and show.
    """

    def __init__(self, finding: Finding, *, retry_after: int | None = None,
                 status: int | None = None) -> None:
        super().__init__(finding.detail)
        self.finding = finding
        self.retry_after = retry_after
        self.status = status  # overrides the catalogue's status (a 503 config.invalid)

    @property
    def code(self) -> str:
        return self.finding.code

    def is_(self, *types: ProblemType) -> bool:
        """Whether this carries one of these catalogue entries: ``err.is_(SECRET_NOT_FOUND)``."""
        return self.finding.type in types


CATALOGUE: dict[str, ProblemType] = {}


def _define(code: str, title: str, status: int, *, retryable: bool = False) -> ProblemType:
    ptype = ProblemType(code, title, status, retryable)
    CATALOGUE[code] = ptype
    return ptype


# PFX (the submitted PKCS#12 file). Validation findings answer 422 as a whole.
PFX_MISSING = _define("pfx.missing", "No PFX was supplied", 422)
PFX_TOO_LARGE = _define("pfx.too_large", "The PFX is too large", 422)
PFX_NOT_PKCS12 = _define("pfx.not_pkcs12", "The file is not a PKCS#12 (PFX) file", 422)
PFX_WRONG_PASSWORD = _define("pfx.wrong_password", "The PFX password is missing or wrong", 422)
PFX_NO_CERTIFICATE = _define("pfx.no_certificate", "The PFX holds no certificate", 422)
PFX_NO_PRIVATE_KEY = _define("pfx.no_private_key", "The PFX holds no private key", 422)
PFX_KEY_MISMATCH = _define(
    "pfx.key_mismatch", "The private key matches none of the certificates", 422
)
PFX_SEVERAL_KEYS = _define("pfx.several_keys", "The PFX holds more than one private key", 422)
# Warnings: the PFX opened, but as uploaded it may not open everywhere.
PFX_PASSWORD_UNUSED = _define(
    "pfx.password_unused", "A password was given for a PFX that has none", 200
)
PFX_LEGACY_ENCRYPTION = _define(
    "pfx.legacy_encryption", "The PFX is encrypted with legacy algorithms", 200
)

# Certificate (the leaf found in the PFX).
CERT_EXPIRED = _define("cert.expired", "The certificate has expired", 422)
CERT_NOT_YET_VALID = _define("cert.not_yet_valid", "The certificate is not valid yet", 422)
CERT_EXPIRING_SOON = _define("cert.expiring_soon", "The certificate expires soon", 200)
CERT_WEAK_KEY = _define("cert.weak_key", "The certificate's key is too weak", 422)
CERT_WEAK_SIGNATURE = _define(
    "cert.weak_signature", "The certificate is signed with a weak hash", 422
)
CERT_MISSING_CLIENT_AUTH = _define(
    "cert.missing_client_auth", "The certificate does not allow TLS client authentication", 422
)
CERT_UNTRUSTED_ISSUER = _define(
    "cert.untrusted_issuer", "The certificate was not issued by a trusted issuer", 422
)
CERT_IS_CA = _define("cert.is_ca", "The certificate is a CA certificate", 422)
CERT_MALFORMED = _define("cert.malformed", "The certificate could not be fully parsed", 422)

# API credentials.
API_KEY_MISSING = _define("credentials.api_key_missing", "No API key was supplied", 422)
API_SECRET_MISSING = _define("credentials.api_secret_missing", "No API secret was supplied", 422)

# GlobalSign Atlas.
GS_MTLS_REJECTED = _define(
    "globalsign.mtls_rejected", "GlobalSign refused the PFX's certificate for mutual TLS", 422
)
GS_INVALID_CREDENTIALS = _define(
    "globalsign.invalid_credentials", "GlobalSign rejected the API key or secret", 422
)
GS_UNAVAILABLE = _define(
    "globalsign.unavailable", "GlobalSign is unreachable or busy", 503, retryable=True
)
GS_UNEXPECTED_RESPONSE = _define(
    "globalsign.unexpected_response", "GlobalSign answered unexpectedly", 502
)

# The webhook's client certificate (X-ARR-ClientCert).
CLIENTCERT_MISSING = _define("clientcert.missing", "A client certificate is required", 401)
CLIENTCERT_MALFORMED = _define(
    "clientcert.malformed", "The client certificate could not be decoded", 403
)
CLIENTCERT_UNTRUSTED = _define("clientcert.untrusted", "The client certificate is not trusted", 403)
CLIENTCERT_EXPIRED = _define(
    "clientcert.expired", "The client certificate is outside its validity period", 403
)
CLIENTCERT_IDENTITY_MISMATCH = _define(
    "clientcert.identity_mismatch", "The client certificate is not an accepted identity", 403
)
# A warning: identity rules are switched off (DIP_CLIENT_IDENTITIES=any, test environments
# only), so the policy accepts any certificate that chains.
CLIENTCERT_NO_IDENTITY_RULES = _define(
    "clientcert.no_identity_rules", "Identity rules are switched off", 200
)

# The DIP message signature.
SIGNATURE_MISSING = _define("signature.missing", "The DIP signature headers are missing", 401)
SIGNATURE_MALFORMED = _define("signature.malformed", "The DIP signature headers are malformed", 403)
SIGNATURE_CONTENT_HASH_MISMATCH = _define(
    "signature.content_hash_mismatch", "The content hash does not match the body", 403
)
SIGNATURE_STALE = _define("signature.stale", "The signature date is outside the window", 403)
SIGNATURE_UNTRUSTED_CERTIFICATE = _define(
    "signature.untrusted_certificate", "The signing certificate is not trusted", 403
)
SIGNATURE_INVALID = _define("signature.invalid", "The signature does not verify", 403)

# The message itself.
MESSAGE_TOO_LARGE = _define("message.too_large", "The message is too large", 413)
MESSAGE_UNSUPPORTED_MEDIA_TYPE = _define(
    "message.unsupported_media_type", "The media type is not supported", 415
)
MESSAGE_MALFORMED_JSON = _define("message.malformed_json", "The body is not valid JSON", 400)
MESSAGE_INVALID_ENVELOPE = _define(
    "message.invalid_envelope", "The body is not a valid DIP delivery", 400
)
# A warning: a stored transaction ID delivered again with different bytes (acknowledged,
# the copy kept beside the original for audit).
MESSAGE_CONFLICTING_REDELIVERY = _define(
    "message.conflicting_redelivery",
    "A stored transaction ID was delivered again with different content", 200
)

# Storage.
INBOX_UNAVAILABLE = _define(
    "inbox.unavailable", "The inbox is unavailable; retry later", 503, retryable=True
)
SECRET_STORE_UNAVAILABLE = _define(
    "secrets.unavailable", "The secret store is unavailable; retry later", 503, retryable=True
)
SECRET_NOT_FOUND = _define("secrets.not_found", "Nothing is stored under that name", 404)
# Permanent secret-store answers: retrying cannot change them, an operator must act.
SECRET_FORBIDDEN = _define(
    "secrets.forbidden", "The app's identity may not do this in the secret store", 500
)
SECRET_DELETED_RECOVERABLE = _define(
    "secrets.deleted_recoverable",
    "The secret name is deleted but recoverable, so it cannot be written", 409,
)
SECRET_DISABLED = _define("secrets.disabled", "The secret version is disabled", 409)
SECRET_TOO_LARGE = _define(
    "secrets.too_large", "The value is larger than the secret store keeps", 413
)
EVENTS_STORAGE_UNAVAILABLE = _define(
    "storage.unavailable", "The event storage is unavailable; retry later", 503, retryable=True
)

# Event Grid events delivered through the events queue, and PFX uploads.
EVENT_MALFORMED = _define(
    "event.malformed", "The message is not a valid Event Grid or CloudEvents event", 400
)
UPLOAD_NOT_IMPORTED = _define(
    "upload.not_imported", "The uploaded PFX was not imported into the secret store", 409
)

# Requests that are not a submission at all, and the service's own configuration.
REQUEST_TOO_LARGE = _define("request.too_large", "The request body is too large", 413)
REQUEST_UNSUPPORTED_MEDIA_TYPE = _define(
    "request.unsupported_media_type", "The media type is not supported", 415
)
REQUEST_MALFORMED = _define("request.malformed", "The request could not be read", 400)
REQUEST_URI_TOO_LONG = _define("request.uri_too_long", "The request line is too long", 414)
REQUEST_HEADERS_TOO_LARGE = _define(
    "request.headers_too_large", "The request head is too large", 431
)
REQUEST_FUNCTION_KEY_REQUIRED = _define(
    "request.function_key_required", "A valid function key is required", 401
)
REQUEST_NOT_FOUND = _define("request.not_found", "No function serves this path", 404)
REQUEST_METHOD_NOT_ALLOWED = _define(
    "request.method_not_allowed", "The function does not accept this method", 405
)
REQUEST_CROSS_ORIGIN = _define(
    "request.cross_origin", "The request did not come from this app's own page", 403
)
CONFIG_INVALID = _define("config.invalid", "The service is misconfigured", 500)
INTERNAL_ERROR = _define("internal.error", "An unexpected error occurred", 500)


def problem_result(
    headline: Finding,
    *,
    status: int | None = None,
    errors: list[Finding] | tuple[Finding, ...] = (),
    warnings: list[Finding] | tuple[Finding, ...] = (),
    retry_after: int | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResult:
    """Render an RFC 9457 problem document whose ``code`` is the headline finding's."""
    status = status or headline.type.status
    doc: dict[str, Any] = {
        "type": f"urn:dip-edge:problem:{headline.code}",
        "title": headline.type.title,
        "status": status,
        "detail": headline.detail,
        "code": headline.code,
    }
    if errors or warnings:
        doc["errors"] = [f.to_dict() for f in errors]
        doc["warnings"] = [f.to_dict() for f in warnings]
    if extra:
        doc.update(extra)
    headers = {"Content-Type": PROBLEM_MEDIA_TYPE}
    if retry_after is None and headline.type.retryable:
        retry_after = 30
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = json.dumps(doc, separators=(",", ":"), default=str).encode()
    return HttpResult(status, body, headers)


def error_result(err: DipEdgeError) -> HttpResult:
    return problem_result(err.finding, status=err.status, retry_after=err.retry_after)
