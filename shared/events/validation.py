"""The full validation of a PFX found by an event, and the report that records it.

Offline checks (``check_pfx``) first; then, when the offline checks pass and a GlobalSign
API key and secret are stored, the Atlas login with this PFX (``prove_credentials``).
GlobalSign being unreachable is not a verdict: it raises ``globalsign.unavailable`` so
the queue retries the event later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.problems import GS_UNAVAILABLE, DipEdgeError, Finding
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.atlas.proof import AtlasProof
    from shared.certs.report import PfxReport
    from shared.events.schema import Event
    from shared.vault.base import SecretStore

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ApiCredentials:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


@dataclass(frozen=True)
class Validation:
    pfx: PfxReport
    proof: AtlasProof | None
    atlas_note: str | None  # why Atlas was not asked, when it was not
    credentials: ApiCredentials | None = field(default=None, repr=False)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return self.pfx.errors + (self.proof.errors if self.proof else ())

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return self.pfx.warnings + (self.proof.warnings if self.proof else ())

    @property
    def valid(self) -> bool:
        return not self.errors

    def globalsign(self) -> dict[str, Any]:
        if self.proof is not None:
            return self.proof.to_dict()
        return {"checked": False, "reason": self.atlas_note}


def stored_api_credentials(store: SecretStore, settings: Settings) -> ApiCredentials | None:
    """The API key and secret of the current credential set, or None when none is stored."""
    from shared.problems import SECRET_NOT_FOUND
    from shared.vault.credentials import load_credentials

    try:
        stored = load_credentials(store, settings)
    except DipEdgeError as err:
        if err.is_(SECRET_NOT_FOUND):
            return None
        raise
    return ApiCredentials(stored.api_key, stored.api_secret)


def validate_pfx(data: bytes | None, password: bytes | None, settings: Settings,
                 store: SecretStore, *,
                 now: datetime | None = None) -> Validation:
    """Check a PFX offline and, if it passes and API credentials are stored, with Atlas."""
    from shared.certs.pfx_check import PfxPolicy, check_pfx

    report = check_pfx(data, password, PfxPolicy.from_settings(settings), now=now)
    if not report.valid:
        return Validation(report, None, "the PFX failed the offline checks")
    credentials = stored_api_credentials(store, settings)
    if credentials is None:
        return Validation(report, None, "no GlobalSign API key and secret are stored")
    from shared.atlas.client import AtlasConnection
    from shared.validation import validate_credentials

    proof = validate_credentials(report, credentials.api_key, credentials.api_secret,
                                 AtlasConnection.from_settings(settings)).proof
    if proof is None:  # not asked: cannot happen for a PFX that passed, with both given
        return Validation(report, None, "the stored GlobalSign API key or secret is empty")
    if proof.unavailable:
        detail = next((f.detail for f in proof.errors), "GlobalSign Atlas did not answer")
        raise DipEdgeError(GS_UNAVAILABLE(detail), retry_after=proof.retry_after)
    return Validation(report, proof, None, credentials)


def report_document(kind: str, *, event: Event, message_id: str | None,
                    subject: dict[str, Any], errors: tuple[Finding, ...] = (),
                    warnings: tuple[Finding, ...] = (), validation: Validation | None = None,
                    outcome: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON report of one handled event (documented in the README)."""
    errors = (validation.errors if validation else ()) + tuple(errors)
    warnings = (validation.warnings if validation else ()) + tuple(warnings)
    certificate = validation.pfx.certificate if validation else None
    document: dict[str, Any] = {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "kind": kind,
        "outcome": outcome or ("failed" if errors else "passed"),
        "valid": bool(validation and validation.valid),
        "handledAt": datetime.now(UTC).isoformat(),
        "messageId": message_id,
        "event": event.summary(),
        kind: subject,
        "errors": [f.to_dict() for f in errors],
        "warnings": [f.to_dict() for f in warnings],
        "certificate": certificate.to_dict() if certificate else None,
        "chain": [c.to_dict() for c in validation.pfx.chain] if validation else [],
        "pkcs12": validation.pfx.pkcs12() if validation else None,
        "globalsign": validation.globalsign() if validation else None,
    }
    document.update(extra)
    return document
