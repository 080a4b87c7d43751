"""PFX files dropped into UPLOADS_CONTAINER: validate, optionally import, report, delete.

The password of an uploaded PFX (if it has one) is read from the secret store under
:func:`password_secret_name` of the blob's name, e.g. ``renewals/acme 2026.pfx`` →
``pfx-upload-password-renewals-acme-2026-pfx``. The report is
``uploads/<blob name>/<etag>.json``: the blob's ETag identifies this upload, so a
redelivered event finds its report, and a re-upload under the same name gets its own.

With UPLOAD_IMPORT_TO_KEY_VAULT, a PFX that passes becomes the current GlobalSign PFX
(stored password-less) together with the stored API key and secret, after those were
proven against Atlas with the new PFX; without stored API credentials nothing is
imported (``upload.not_imported``). The blob is deleted after handling unless
UPLOAD_KEEP_BLOB — only if it is still the uploaded version (ETag match).
"""

from __future__ import annotations

import re

from shared.certs import MAX_PFX_BYTES
from shared.events.context import EventContext, Handled, logger, report_outcome
from shared.events.schema import BlobRef, Event, blob_ref
from shared.events.secret_events import log_outcome
from shared.events.validation import Validation, report_document, validate_pfx
from shared.logtext import shown
from shared.problems import (
    PFX_MISSING,
    PFX_TOO_LARGE,
    SECRET_NOT_FOUND,
    UPLOAD_NOT_IMPORTED,
    DipEdgeError,
    Finding,
)
from shared.settings import Settings
from shared.storage.connection import delete_upload, fetch_upload, normalise_etag
from shared.telemetry import audit

EVENT_TYPE = "Microsoft.Storage.BlobCreated"
# What this handler reads itself (the stores and checks it calls check their own).
UPLOAD_SETTINGS = (Settings.uploads_container, Settings.upload_import_to_key_vault,
                   Settings.upload_keep_blob)
PASSWORD_SECRET_PREFIX = "pfx-upload-password-"  # noqa: S105 - a name, not a secret


def password_secret_name(blob_name: str) -> str:
    """The secret holding an upload's password: prefix + the blob name, lower-cased, with
    every run of characters other than letters and digits made one dash (127 at most)."""
    slug = re.sub(r"[^a-z0-9]+", "-", blob_name.lower()).strip("-")
    return (PASSWORD_SECRET_PREFIX + slug)[:127].rstrip("-")


def report_name(blob_name: str, etag: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", blob_name).strip(".") or "_"
    return f"uploads/{safe}/{re.sub(r'[^A-Za-z0-9]+', '', etag)}.json"


def handle(event: Event, ctx: EventContext) -> Handled:
    settings = ctx.settings
    ref = blob_ref(event)
    if ref.container != settings.uploads_container:
        logger.debug("ignored BlobCreated in container %s: not the uploads container",
                     shown(ref.container))
        return Handled("ignored")
    settings.require(*UPLOAD_SETTINGS)  # config.invalid: retried, as a fixable fault
    etag = normalise_etag(ref.etag)
    name = report_name(ref.name, etag or f"event-{event.id}")
    if ctx.reports.get(name) is not None:
        _tidy(ctx, ref, etag)  # the first delivery may have stopped before deleting
        logger.info("upload event already handled: report %s exists",
                    ctx.reports.location(name))
        return Handled("duplicate", name)
    upload = fetch_upload(settings, ref.container, ref.name, etag=etag,
                          max_bytes=MAX_PFX_BYTES)
    subject = {"container": ref.container, "blob": ref.name, "eTag": etag,
               "size": upload.size if upload.exists else ref.content_length,
               "passwordSecret": password_secret_name(ref.name)}
    if upload.exists and etag and upload.etag != etag:
        # Overwritten since the event: the newer upload's own event will handle it.
        logger.info("upload %s/%s was replaced after this event; its newer version is "
                    "handled by its own event", shown(ref.container), shown(ref.name))
        return Handled("superseded")
    errors: tuple[Finding, ...] = ()
    validation: Validation | None = None
    imported = None
    if not upload.exists:
        errors = (PFX_MISSING(f"the uploaded blob {ref.container}/{ref.name} no longer "
                              f"exists"),)
    elif upload.data is None:
        errors = (PFX_TOO_LARGE(f"the uploaded blob is {upload.size} bytes; a PFX may be at "
                                f"most {MAX_PFX_BYTES} bytes (real ones are a few KB)"),)
    elif not upload.data:
        errors = (PFX_MISSING("the uploaded blob is empty"),)
    else:
        validation = validate_pfx(upload.data, _password(ctx, ref), settings, ctx.store)
        if validation.valid and settings.upload_import_to_key_vault:
            imported, errors = _import(ctx, validation)
    document = report_document("upload", event=event, message_id=ctx.message_id,
                               subject=subject, validation=validation, errors=errors,
                               imported=imported)
    if not ctx.reports.create(name, document):
        logger.info("upload event already handled: report %s exists",
                    ctx.reports.location(name))
        return Handled("duplicate", name)
    log_outcome(f"uploaded PFX {shown(ref.container)}/{shown(ref.name)}", document,
                ctx.reports.location(name))
    _tidy(ctx, ref, etag)
    return Handled("validated", name, *report_outcome(document))


def _password(ctx: EventContext, ref: BlobRef) -> bytes | None:
    try:
        return ctx.store.get_secret(password_secret_name(ref.name)).value.encode()
    except DipEdgeError as err:
        if err.is_(SECRET_NOT_FOUND):
            return None  # a password-less PFX, or the checker says a password is needed
        raise


def _import(ctx: EventContext, validation: Validation) -> tuple[dict | None,
                                                                  tuple[Finding, ...]]:
    """Make a passing upload the current PFX; (metadata, ()) or (None, (finding,))."""
    from shared.certs.facts import to_passwordless_pfx
    from shared.vault.credentials import load_metadata, save_credentials

    settings, store = ctx.settings, ctx.store
    if validation.credentials is None:
        return None, (UPLOAD_NOT_IMPORTED(
            "no GlobalSign API key and secret are stored, and a PFX is only imported with "
            "the key and secret it was proven with; submit the whole credential set "
            "(POST /api/credentials) instead"),)
    facts = validation.pfx.certificate
    if facts is None:  # a PFX that passed is always described
        raise RuntimeError("a passing PFX without certificate facts")
    current = load_metadata(store, settings)
    if current is not None and current.thumbprint == facts.thumbprint_sha1:
        # A retry after the import succeeded, or the same PFX uploaded again.
        return {"alreadyCurrent": True, **current.to_dict()}, ()
    metadata = save_credentials(store, settings, api_key=validation.credentials.api_key,
                                api_secret=validation.credentials.api_secret,
                                pfx_passwordless=to_passwordless_pfx(validation.pfx),
                                facts=facts, validated_by="upload")
    audit("credentials.import", {
        "source": "upload", "outcome": "stored", "thumbprint": facts.thumbprint_sha1,
        "subject": facts.subject, "notAfter": facts.not_after,
        "previousThumbprint": current.thumbprint if current else None,
        "credentialSet": metadata.set_id})
    return {"alreadyCurrent": False, **metadata.to_dict()}, ()


def _tidy(ctx: EventContext, ref: BlobRef, etag: str | None) -> None:
    if ctx.settings.upload_keep_blob:
        return
    if delete_upload(ctx.settings, ref.container, ref.name, etag):
        logger.info("deleted the uploaded PFX %s/%s after handling it", shown(ref.container),
                    shown(ref.name))
