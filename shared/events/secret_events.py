"""Key Vault events: validate each new version of the PFX secret; report expiry warnings.

A new version of SECRET_NAME_PFX (as a secret, or as a Key Vault certificate of that name,
whose private part Key Vault exposes as a secret of the same name and version) is pulled
from the store *by version*, validated, tagged ``validation=passed|failed`` and
``validationError=<first code>``, and reported in ``keyvault/<secret>/<version>.json``.
The report is written last and create-only, so a redelivered event finds it and stops.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

from shared.events.context import EventContext, Handled, logger, report_outcome
from shared.events.schema import Event, KeyVaultObject, key_vault_object
from shared.events.validation import Validation, report_document, validate_pfx
from shared.logtext import shown
from shared.problems import (
    PFX_NOT_PKCS12,
    SECRET_DISABLED,
    SECRET_NOT_FOUND,
    DipEdgeError,
    Finding,
)
from shared.settings import Settings
from shared.telemetry import audit
from shared.vault.base import StoredSecret

PREFIX = "Microsoft.KeyVault."
NEW_VERSION = {PREFIX + "SecretNewVersionCreated", PREFIX + "CertificateNewVersionCreated"}
NEAR_EXPIRY = {PREFIX + "SecretNearExpiry", PREFIX + "CertificateNearExpiry"}
EXPIRED = {PREFIX + "SecretExpired", PREFIX + "CertificateExpired"}
EVENT_TYPES = NEW_VERSION | NEAR_EXPIRY | EXPIRED

PKCS12_CONTENT_TYPE = "application/x-pkcs12"


def report_name(secret: str, version: str) -> str:
    return f"keyvault/{secret}/{version}.json"


def credential_role(name: str, settings: Settings) -> str | None:
    """What a secret of that name is to dip-edge, if anything."""
    roles = {
        settings.secret_name_pfx: "the GlobalSign Atlas access PFX",
        settings.secret_name_api_key: "the GlobalSign API key",
        settings.secret_name_api_secret: "the GlobalSign API secret",
        settings.secret_name_credential_set: "the GlobalSign credential set manifest",
        settings.secret_name_signing_cert: "the DIP signing certificate",
        settings.secret_name_tls_cert: "the webhook's TLS certificate",
    }
    return {k.lower(): v for k, v in roles.items() if k}.get(name.lower())


def handle(event: Event, ctx: EventContext) -> Handled:
    obj = key_vault_object(event)
    vault = _configured_vault(ctx.settings)
    if vault and obj.vault_host and obj.vault_host != vault:
        logger.debug("ignored %s from vault %s: not the configured vault", shown(event.type),
                     shown(obj.vault_host))
        return Handled("ignored")
    if event.type in NEW_VERSION:
        return _new_version(event, obj, ctx)
    return _expiry(event, obj, ctx)


def _configured_vault(settings: Settings) -> str | None:
    if settings.secret_store != "keyvault" or not settings.key_vault_url:  # noqa: S105
        return None  # the local store: events are replayed by hand, from any vault
    return (urlsplit(settings.key_vault_url).hostname or "").lower() or None


def _new_version(event: Event, obj: KeyVaultObject, ctx: EventContext) -> Handled:
    settings = ctx.settings
    if obj.name.lower() != settings.secret_name_pfx.lower():
        logger.debug("ignored %s for %r: not the PFX secret %r", shown(event.type), obj.name,
                     settings.secret_name_pfx)
        return Handled("ignored")
    # No version (and, below, no secret to take it from): the event's id, which is free
    # text, names the report through its digest.
    name = report_name(settings.secret_name_pfx, obj.version or
                       "event-" + hashlib.sha256(event.id.encode()).hexdigest()[:32])
    if obj.version and ctx.reports.get(name) is not None:
        return _duplicate(ctx, name)
    subject = {"name": settings.secret_name_pfx, "version": obj.version,
               "objectType": obj.kind, "vault": obj.vault_host}
    try:
        secret = ctx.store.get_secret(settings.secret_name_pfx, obj.version)
    except DipEdgeError as err:
        if not err.is_(SECRET_NOT_FOUND, SECRET_DISABLED):
            raise  # secrets.unavailable: the queue retries; secrets.forbidden: reported
        document = report_document("secret", event=event, message_id=ctx.message_id,
                                   subject=subject, errors=(err.finding,))
        return _record(ctx, name, document, f"PFX secret {obj.name!r} version {obj.version}")
    version = secret.version or obj.version or ""
    if secret.version and secret.version != obj.version:
        name = report_name(settings.secret_name_pfx, secret.version)
        if ctx.reports.get(name) is not None:
            return _duplicate(ctx, name)
    subject = {**subject, "version": version, "contentType": secret.content_type,
               "createdOn": secret.created_on.isoformat() if secret.created_on else None,
               "expiresOn": secret.expires_on.isoformat() if secret.expires_on else None}
    validation: Validation | None = None
    errors: tuple[Finding, ...] = ()
    try:
        data = _pfx_bytes(secret)
    except DipEdgeError as err:  # pfx.not_pkcs12: the verdict on this version
        errors = (err.finding,)
    else:
        validation = validate_pfx(data, None, settings, ctx.store)
        errors = validation.errors
    tags = {"validation": "failed" if errors else "passed"}
    if errors:
        tags["validationError"] = errors[0].code
    # Tags first, report last: a failure in between leaves no report, so the retry redoes
    # both (tags merge, so doing them twice is harmless).
    ctx.store.update_tags(settings.secret_name_pfx, version, tags)
    document = report_document("secret", event=event, message_id=ctx.message_id,
                               subject=subject, validation=validation,
                               errors=() if validation else errors, tags=tags)
    return _record(ctx, name, document, f"PFX secret {obj.name!r} version {version}")


def _pfx_bytes(secret: StoredSecret) -> bytes:
    """The PFX in a secret value: base64 of PKCS#12, as Key Vault stores certificates.

    Raises ``DipEdgeError(pfx.not_pkcs12)`` when the value cannot be one.
    """
    content_type = (secret.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != PKCS12_CONTENT_TYPE:
        raise DipEdgeError(PFX_NOT_PKCS12(
            f"the secret version has content type {content_type!r}; the PFX must be stored "
            f"as {PKCS12_CONTENT_TYPE} (base64)"))
    try:
        return base64.b64decode("".join(secret.value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise DipEdgeError(PFX_NOT_PKCS12(
            "the secret's value is not base64; Key Vault keeps a PFX as the base64 of its "
            "bytes")) from None


def _duplicate(ctx: EventContext, name: str) -> Handled:
    logger.info("event already handled: report %s exists", ctx.reports.location(name))
    return Handled("duplicate", name)


def _record(ctx: EventContext, name: str, document: dict, what: str) -> Handled:
    """Write the report (create-only), log the outcome at its severity, audit the change."""
    if not ctx.reports.create(name, document):
        return _duplicate(ctx, name)
    log_outcome(what, document, ctx.reports.location(name))
    outcome, codes = report_outcome(document)
    certificate = document.get("certificate") or {}
    # A new version of the PFX secret, written by anyone (Key Vault's own audit log names
    # who): part of the audit trail of credential changes.
    audit("credentials.new_version", {
        "source": "keyvault", "outcome": outcome, "codes": codes,
        "secret": document["secret"]["name"], "version": document["secret"]["version"],
        "thumbprint": certificate.get("thumbprintSha1"), "subject": certificate.get("subject"),
        "notAfter": certificate.get("notAfter"), "report": name},
        level=logging.WARNING if codes else logging.INFO)
    return Handled("validated", name, outcome, codes)


def log_outcome(what: str, document: dict, location: str) -> None:
    errors, warnings = document["errors"], document["warnings"]
    if errors:
        first = errors[0]
        logger.error("%s: validation failed (%s: %s; %d error(s)); report %s", what,
                     first["code"], shown(first["detail"]), len(errors), location)
    elif warnings:
        logger.warning("%s: validation passed with %d warning(s) (%s); report %s", what,
                       len(warnings), ", ".join(w["code"] for w in warnings), location)
    else:
        logger.info("%s: validation passed; report %s", what, location)


def _expiry(event: Event, obj: KeyVaultObject, ctx: EventContext) -> Handled:
    role = credential_role(obj.name, ctx.settings)
    expired = event.type in EXPIRED
    what = f"Key Vault {obj.kind.lower() or 'object'} {obj.name!r}"
    if role:
        what += f" ({role})"
    if obj.version:
        what += f" version {obj.version}"
    if obj.expires:
        days = (obj.expires - datetime.now(UTC)).days
        when = (f"expired on {obj.expires.isoformat()}" if expired or days < 0 else
                f"expires on {obj.expires.isoformat()} (in {days} day(s))")
    else:
        when = "has expired" if expired else "expires soon (the event gave no date)"
    logger.log(logging.ERROR if expired else logging.WARNING, "%s %s", what, when)
    return Handled("expiry", outcome="expired" if expired else "near_expiry")
