"""``GET /api/health``: liveness and a configuration summary, never a secret."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from shared.settings import Settings
from shared.web import HttpResult, Request, json_result


def _version() -> str:
    try:
        return version("dip-edge")
    except PackageNotFoundError:
        return "unknown"


_TRUST_SETTINGS = ("DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES", "DIP_CLIENT_IDENTITIES",
                   "DIP_CLIENT_EKU", "DIP_SIGNER_TRUST_ANCHORS", "DIP_SIGNER_INTERMEDIATES",
                   "DIP_SIGNER_IDENTITIES", "AIA_FETCH", "AIA_ALLOWED_HOSTS")


def _trust_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """Errors and warnings of the webhook's trust settings, found by building its policies
    (PEM that holds no certificate, identity rules of the wrong shape, ...) so they show
    here and not only at the first delivery. The policies are cached, so this is cheap."""
    from shared.certs.policy import CertificatePolicy
    from shared.problems import DipEdgeError

    if settings.errors_for(*_TRUST_SETTINGS):
        return [], []  # already listed among the settings' errors
    errors: list[str] = []
    warnings: list[str] = []
    for build in (CertificatePolicy.for_client, CertificatePolicy.for_signer):
        try:
            policy = build(settings)
        except DipEdgeError as err:
            errors.append(str(err))
            continue
        warnings += [f.detail for f in policy.warnings]
    return errors, warnings


def check(request: Request, settings: Settings) -> HttpResult:
    """200 when every setting is valid, 503 listing the bad ones otherwise."""
    trust_errors, trust_warnings = _trust_problems(settings)
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
        },
        "errors": errors,
        "warnings": trust_warnings,
    }
    return json_result(503 if errors else 200, document)
