"""The credential API: validate, submit (validate and store) and describe.

* ``POST /api/credentials/validate`` → :func:`validate`: every check, nothing stored; 200
  ``{"valid": true, ...}`` or the problem document with every finding.
* ``POST /api/credentials`` → :func:`submit`: the same checks; only when all pass, the set
  is stored (``shared.vault.credentials``) and the answer is 201 ``{"status": "Added
  successfully", "certificate": {...}}``.
* ``GET /api/credentials`` → :func:`describe`: metadata of the stored set, never a secret.

Checks run in order: the submission's shape (``request.*``), then the API key, API secret
and PFX offline (all findings together), then — only when those pass — the proof against
GlobalSign Atlas. A GlobalSign outage answers 503 with ``Retry-After``. Each outcome is
logged with the caller (``X-MS-CLIENT-PRINCIPAL-NAME`` from App Service authentication).
Every finding carries the advice ``check-pfx`` prints (``why``, ``action``). Before any of
it, a browser POST from another site is refused (``shared.same_origin``).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.certs.advice import advised
from shared.problems import (
    API_KEY_MISSING,
    API_SECRET_MISSING,
    DipEdgeError,
    Finding,
    error_result,
    problem_result,
)
from shared.same_origin import require_same_origin
from shared.services.submission import Submission, parse_submission
from shared.settings import Settings
from shared.web import HttpResult, Request, json_result

if TYPE_CHECKING:
    from shared.validation import CredentialVerdict

logger = logging.getLogger("dip_edge.credentials")
_UNSAFE = re.compile(r"[^\w@.+\- ]")


def validate(request: Request, settings: Settings) -> HttpResult:
    return _handle(request, settings, store=False)


def submit(request: Request, settings: Settings) -> HttpResult:
    return _handle(request, settings, store=True)


def describe(request: Request, settings: Settings) -> HttpResult:
    from shared.services.monitor import latest_report
    from shared.storage.reports import latest_validations
    from shared.vault import open_store
    from shared.vault.credentials import load_metadata

    try:
        metadata = load_metadata(open_store(settings), settings)
    except DipEdgeError as err:
        return error_result(err)
    return json_result(200, {"stored": metadata is not None,
                             "credentials": metadata.to_dict() if metadata else None,
                             "monitor": latest_report(settings),
                             "events": latest_validations(settings)})


def check_submission(submission: Submission, settings: Settings) -> CredentialVerdict:
    """Offline checks of all three fields, then (if they pass) the proof against Atlas.

    Raises ``DipEdgeError(config.invalid)`` when the settings the checks need are bad.
    """
    from shared.atlas.client import AtlasConnection
    from shared.certs.pfx_check import PfxPolicy, check_pfx
    from shared.validation import validate_credentials

    connection = AtlasConnection.from_settings(settings)  # before any check: config first
    policy = PfxPolicy.from_settings(settings)
    errors: list[Finding] = []
    if not submission.api_key:
        errors.append(API_KEY_MISSING("Give the GlobalSign API key in the field apiKey."))
    if not submission.api_secret:
        errors.append(API_SECRET_MISSING(
            "Give the GlobalSign API secret in the field apiSecret."))
    errors += submission.findings
    report = None if submission.findings else check_pfx(submission.pfx,
                                                         submission.pfx_password, policy)
    return validate_credentials(report, submission.api_key, submission.api_secret, connection,
                                findings=errors)


def _handle(request: Request, settings: Settings, *, store: bool) -> HttpResult:
    action = "submit" if store else "validate"
    caller = _caller(request)
    try:
        require_same_origin(request)
        settings.require(Settings.credentials_max_body_bytes)
        submission = parse_submission(request, settings.credentials_max_body_bytes)
        verdict = check_submission(submission, settings)
        if not verdict.valid:
            return _rejected(action, caller, verdict)
        if not store:
            logger.info("credentials %s by %s: valid (%s)", action, caller,
                        verdict.report.certificate.thumbprint_sha1)
            return json_result(200, {"valid": True, "errors": [],
                                     "warnings": [advised(f) for f in verdict.warnings],
                                     **verdict.details()})
        return _store(submission, verdict, settings, caller)
    except DipEdgeError as err:
        logger.warning("credentials %s by %s: failed %s", action, caller, err.code)
        return error_result(err)


def _rejected(action: str, caller: str, verdict: CredentialVerdict) -> HttpResult:
    codes = ",".join(f.code for f in verdict.errors)
    logger.info("credentials %s by %s: rejected %s; nothing stored", action, caller, codes)
    retry_after = verdict.proof.retry_after if verdict.proof else None
    return problem_result(verdict.errors[0], errors=verdict.errors, warnings=verdict.warnings,
                          retry_after=retry_after,
                          extra={"valid": False, "errors": [advised(f) for f in verdict.errors],
                                 "warnings": [advised(f) for f in verdict.warnings],
                                 **verdict.details()})


def _store(submission: Submission, verdict: CredentialVerdict, settings: Settings,
           caller: str) -> HttpResult:
    from shared.certs.facts import to_passwordless_pfx
    from shared.vault import open_store
    from shared.vault.credentials import save_credentials

    report = verdict.report
    metadata = save_credentials(
        open_store(settings), settings, api_key=submission.api_key,
        api_secret=submission.api_secret, pfx_passwordless=to_passwordless_pfx(report),
        facts=report.certificate, validated_at=datetime.now(UTC),
        validated_by=None if caller == "unknown" else caller)
    logger.info("credentials submit by %s: stored set %s (%s)", caller, metadata.set_id,
                metadata.thumbprint)
    return json_result(201, {"status": "Added successfully",
                             "warnings": [advised(f) for f in verdict.warnings],
                             **verdict.details(), "stored": metadata.to_dict()},
                       {"Location": "/api/credentials"})


def _caller(request: Request) -> str:
    """The App Service principal name, made safe for a log line."""
    name = request.header("x-ms-client-principal-name")
    return _UNSAFE.sub("?", name.strip())[:128] if name and name.strip() else "unknown"
