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


def check(request: Request, settings: Settings) -> HttpResult:
    """200 when every setting is valid, 503 listing the bad ones otherwise."""
    document = {
        "status": "ok" if not settings.errors else "misconfigured",
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
        "errors": list(settings.errors),
    }
    return json_result(503 if settings.errors else 200, document)
