"""``GET /api/health``: liveness and a configuration summary, never a secret."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shared.settings import Settings
from shared.web import HttpResult, Request, json_result


def _version() -> str:
    try:
        return version("dip-edge")
    except PackageNotFoundError:
        return "unknown"


def _trust(settings: Settings) -> tuple[list[str], list[str], dict[str, Any]]:
    """Errors, warnings and a summary (anchors and identity rules in force) of the webhook's
    trust settings, found by building its policies (PEM that holds no certificate, identity
    rules of the wrong shape, missing identity rules, ...) so they show here and not only at
    the first delivery. A policy whose settings already have issues is not built (those
    issues are listed once, with the others). The policies are cached, so this is cheap."""
    from shared.certs.trust_config import (
        TrustSources,
        identities_missing,
        missing_identities,
        trust_summary,
    )
    from shared.problems import DipEdgeError

    errors: list[str] = []
    warnings: list[str] = []
    summary: dict[str, Any] = {}
    missing = missing_identities(settings)
    if missing:
        errors.append(str(identities_missing(missing)))
    for role in ("client", "signer"):
        if settings.issues_for(*TrustSources.settings_read(settings, role)):
            continue
        try:
            sources = TrustSources.from_settings(settings, role)
            policy = sources.build(inspect=True)
        except DipEdgeError as err:
            errors.append(str(err))
            continue
        warnings += [f.detail for f in policy.warnings]
        summary[role] = trust_summary(sources, policy)
    # The signer falls back to the client's settings: one bad value, one line.
    return list(dict.fromkeys(errors)), list(dict.fromkeys(warnings)), summary


def check(request: Request, settings: Settings) -> HttpResult:
    """200 when every setting is valid, 503 listing every bad one (each once) and what to
    set otherwise."""
    trust_errors, trust_warnings, trust = _trust(settings)
    errors = [*settings.errors, *trust_errors]
    document = {
        "status": "ok" if not errors else "misconfigured",
        "version": _version(),
        "configuration": {
            "secretStore": settings.secret_store,
            "keyVaultUrl": settings.key_vault_url,
            "atlasBaseUrl": settings.atlas_base_url,
            "inboxBackend": settings.inbox_backend,
            "signatureMode": settings.dip_signature_mode,
            "clientEku": settings.dip_client_eku,
            "clientIdentitiesConfigured": settings.dip_client_identities is not None,
            "customClientTrustAnchors": settings.dip_client_trust_anchors is not None,
            "aiaFetch": settings.aia_fetch,
            "expiryWarningDays": settings.expiry_warning_days,
            "trust": trust,
        },
        "errors": errors,
        "warnings": trust_warnings,
    }
    return json_result(503 if errors else 200, document)
