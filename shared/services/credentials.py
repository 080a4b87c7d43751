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
one ``credentials`` record and one ``audit`` record (:mod:`shared.telemetry`) naming the
caller (``X-MS-CLIENT-PRINCIPAL-NAME`` / ``-ID`` from App Service authentication).
Every finding carries the advice ``check-pfx`` prints (``why``, ``action``; the action in
the API's terms where the CLI's names its flags). Before any of
it, a browser POST from another site is refused (``shared.same_origin``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from shared.telemetry import audit, caller, emit
from shared.web import HttpResult, Request, json_result

if TYPE_CHECKING:
    from shared.validation import CredentialVerdict, Passed

logger = logging.getLogger("dip_edge.credentials")


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
    started = time.perf_counter()
    action = "submit" if store else "validate"
    who = caller(request.header)
    seen: dict[str, Any] = {}
    try:
        require_same_origin(request)
        settings.require(Settings.credentials_max_body_bytes)
        submission = parse_submission(request, settings.credentials_max_body_bytes)
        verdict = check_submission(submission, settings)
        seen.update(_certificate_fields(verdict))
        passed = verdict.passed
        if passed is None:  # an error, or GlobalSign did not answer
            result = _rejected(verdict)
            seen.update(outcome="rejected", codes=[f.code for f in verdict.errors])
        elif not store:
            result = json_result(200, {"valid": True, "errors": [],
                                       "warnings": [advised(f) for f in verdict.warnings],
                                       **verdict.details()})
            seen["outcome"] = "valid"
        else:
            result = _store(passed, verdict, settings, who["caller"], seen)
            seen["outcome"] = "stored"
    except DipEdgeError as err:
        result = error_result(err)
        seen.update(outcome="failed", codes=[err.code])
    fields = {"outcome": seen.pop("outcome"), "status": result.status,
              "codes": seen.pop("codes", []), **seen, **who}
    level = logging.INFO if result.status < 500 else logging.WARNING
    emit(logger, "credentials", {"action": action, **fields,
                                 "durationMs": (time.perf_counter() - started) * 1000},
         level=level)
    audit(f"credentials.{action}", {"source": "api", **fields}, level=level)
    return result


def _certificate_fields(verdict: CredentialVerdict) -> dict[str, Any]:
    facts = verdict.report.certificate if verdict.report else None
    return {"warnings": [f.code for f in verdict.warnings],
            "thumbprint": facts.thumbprint_sha1 if facts else None,
            "subject": facts.subject if facts else None,
            "notAfter": facts.not_after if facts else None}


def _rejected(verdict: CredentialVerdict) -> HttpResult:
    retry_after = verdict.proof.retry_after if verdict.proof else None
    return problem_result(verdict.errors[0], errors=verdict.errors, warnings=verdict.warnings,
                          retry_after=retry_after,
                          extra={"valid": False, "errors": [advised(f) for f in verdict.errors],
                                 "warnings": [advised(f) for f in verdict.warnings],
                                 **verdict.details()})


def _store(passed: Passed, verdict: CredentialVerdict, settings: Settings,
           caller_name: str | None, seen: dict[str, Any]) -> HttpResult:
    from shared.certs.facts import to_passwordless_pfx
    from shared.vault import open_store
    from shared.vault.credentials import save_credentials

    metadata = save_credentials(
        open_store(settings), settings, api_key=passed.account.api_key,
        api_secret=passed.account.api_secret,
        pfx_passwordless=to_passwordless_pfx(passed.report), facts=passed.certificate,
        validated_at=datetime.now(UTC), validated_by=caller_name)
    seen["credentialSet"] = metadata.set_id
    return json_result(201, {"status": "Added successfully",
                             "warnings": [advised(f) for f in verdict.warnings],
                             **verdict.details(), "stored": metadata.to_dict()},
                       {"Location": "/api/credentials"})
