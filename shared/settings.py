"""Typed settings, read once from app settings (Azure) or the environment (locally).

Reading never raises: the Functions host imports ``function_app`` before anyone has
configured anything. A bad value is recorded in :attr:`Settings.errors` (and the
setting falls back to its default); the functions that need the setting report it
through :meth:`Settings.require_valid`, and ``/api/health`` lists every error.

Every setting is declared once in :data:`SETTINGS`; ``local.settings.example.json``,
the README and ``infra/`` are checked against that list by the tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.problems import CONFIG_INVALID, DipEdgeError

DEFAULT_ATLAS_BASE_URL = "https://emea.api.hvca.globalsign.com:8443/v2"


class SettingError(ValueError):
    pass


def _text(value: str) -> str:
    return value


def _optional_text(value: str) -> str | None:
    return value or None


def _int(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise SettingError(f"must be a whole number, got {value!r}") from None
        if not minimum <= number <= maximum:
            raise SettingError(f"must be between {minimum} and {maximum}, got {number}")
        return number

    return parse


def _float(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise SettingError(f"must be a number, got {value!r}") from None
        if not minimum <= number <= maximum:
            raise SettingError(f"must be between {minimum} and {maximum}, got {number}")
        return number

    return parse


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingError(f"must be true or false, got {value!r}")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in choices:
            raise SettingError(f"must be one of {', '.join(choices)}, got {value!r}")
        return lowered

    return parse


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise SettingError(f"must be an https:// URL, got {value!r}")
    return value.rstrip("/")


def _optional_https_url(value: str) -> str | None:
    return _https_url(value) if value else None


def _base_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingError(f"must be a URL such as https://host[:port], got {value!r}")
    return value.rstrip("/")


def _pem_or_path(value: str) -> str | None:
    """Inline PEM, or the path of a PEM file (checked to exist)."""
    if not value:
        return None
    if "-----BEGIN" in value:
        return value
    if not Path(value).is_file():
        raise SettingError(f"is neither inline PEM nor the path of a file: {value!r}")
    return value


def _json_or_path(value: str) -> str | None:
    """Inline JSON, or the path of a JSON file (checked to exist)."""
    if not value:
        return None
    if value.lstrip()[:1] in {"[", "{"}:
        return value
    if not Path(value).is_file():
        raise SettingError(f"is neither inline JSON nor the path of a file: {value!r}")
    return value


def _host_list(value: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def _secret_name(value: str) -> str:
    if not value or len(value) > 127 or not all(c.isalnum() or c == "-" for c in value):
        raise SettingError(f"must be 1-127 letters, digits and dashes, got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    example: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("DIP_EDGE_STATE_DIR", ".dip-edge", _text,
            "Where the embedded defaults keep their files (local secret store, SQLite inbox, "
            "dev certificates).", ".dip-edge"),
    Setting("SECRET_STORE", "", _choice("keyvault", "local"),
            "`keyvault` or `local`; default `keyvault` when KEY_VAULT_URL is set, else `local`.",
            "local"),
    Setting("KEY_VAULT_URL", "", _optional_https_url, "The Key Vault's URI.",
            "https://example-vault.vault.azure.net/"),
    Setting("SECRET_NAME_API_KEY", "globalsign-api-key", _secret_name,
            "Secret name of the GlobalSign API key.", "globalsign-api-key"),
    Setting("SECRET_NAME_API_SECRET", "globalsign-api-secret", _secret_name,
            "Secret name of the GlobalSign API secret.", "globalsign-api-secret"),
    Setting("SECRET_NAME_PFX", "globalsign-pfx", _secret_name,
            "Secret name of the GlobalSign Atlas access PFX (stored password-less, base64, "
            "content type application/x-pkcs12).", "globalsign-pfx"),
    Setting("SECRET_NAME_CREDENTIAL_SET", "globalsign-credential-set", _secret_name,
            "Secret name of the manifest naming the current versions of the API key, API "
            "secret and PFX (written last, so the three change together).",
            "globalsign-credential-set"),
    Setting("KEY_VAULT_MAX_RETRIES", "3", _int(0, 10),
            "Retries of a failed Key Vault request (the SDK's retry policy).", "3"),
    Setting("ATLAS_BASE_URL", DEFAULT_ATLAS_BASE_URL, _https_url,
            "GlobalSign Atlas HVCA API base URL.", DEFAULT_ATLAS_BASE_URL),
    Setting("ATLAS_CA_BUNDLE", "", _pem_or_path,
            "CA certificates to verify the Atlas server with (inline PEM or path); default "
            "system trust.", ""),
    Setting("ATLAS_TIMEOUT_SECONDS", "15", _float(0.1, 300),
            "Timeout of each call to GlobalSign Atlas, in seconds.", "15"),
    Setting("ATLAS_MAX_RETRIES", "3", _int(0, 10),
            "Retries on 429/503/202 and network errors before reporting GlobalSign "
            "unavailable.", "3"),
    Setting("ATLAS_RETRY_BACKOFF_SECONDS", "1", _float(0, 60),
            "First wait between tries to GlobalSign Atlas (doubling; Retry-After is honoured; "
            "each wait capped at ATLAS_TIMEOUT_SECONDS).", "1"),
    Setting("PFX_TRUSTED_ISSUERS", "", _pem_or_path,
            "Extra issuer certificates the PFX checker accepts (inline PEM or path).", ""),
    Setting("EXPIRY_WARNING_DAYS", "30", _int(0, 3650),
            "Days before expiry that warn.", "30"),
    Setting("EXPIRY_ERROR_DAYS", "7", _int(0, 3650),
            "Days before expiry that the monitor reports at error level.", "7"),
    Setting("CREDENTIALS_MAX_BODY_BYTES", "2097152", _int(1024, 64 * 1024 * 1024),
            "Largest accepted credential submission (JSON or multipart).", "2097152"),
    Setting("INBOX_BACKEND", "", _choice("sqlite", "blob"),
            "`sqlite` or `blob`; default `blob` when INBOX_STORAGE is set, else `sqlite`.",
            "sqlite"),
    Setting("INBOX_STORAGE", "", _optional_text,
            "Storage connection string or account URL (identity-based) for the inbox.", ""),
    Setting("INBOX_CONTAINER", "dip-inbox", _text,
            "Blob container of the inbox.", "dip-inbox"),
    Setting("INBOX_QUEUE", "dip-inbox", _text,
            "Queue told about each stored message, for downstream processing.", "dip-inbox"),
    Setting("DIP_CLIENT_TRUST_ANCHORS", "", _pem_or_path,
            "Roots the DIP's client certificate must chain to; default the bundled GlobalSign "
            "roots.", ""),
    Setting("DIP_CLIENT_INTERMEDIATES", "", _pem_or_path,
            "Extra intermediate certificates for chain building.", ""),
    Setting("DIP_CLIENT_IDENTITIES", "", _json_or_path,
            "JSON list of identity rules the client certificate must match (one rule "
            "entirely); none: any certificate that chains.", ""),
    Setting("DIP_CLIENT_EKU", "client", _choice("client", "server", "any"),
            "Extended key usage the client certificate needs: `client`, `server` or `any`.",
            "client"),
    Setting("DIP_SIGNATURE_MODE", "required", _choice("required", "optional", "off"),
            "`required`, `optional` or `off`.", "required"),
    Setting("DIP_SIGNER_TRUST_ANCHORS", "", _pem_or_path,
            "Roots for the certificate in X-DIP-Signature-Certificate; default the client's.", ""),
    Setting("DIP_SIGNER_INTERMEDIATES", "", _pem_or_path,
            "Intermediates for the signer's chain; default the client's.", ""),
    Setting("DIP_SIGNER_IDENTITIES", "", _json_or_path,
            "Identity rules for the signer's certificate; default the client's.", ""),
    Setting("DIP_SIGNATURE_MAX_SKEW_SECONDS", "300", _int(1, 86400),
            "Accepted distance of X-DIP-Signature-Date from now, in seconds.", "300"),
    Setting("DIP_PUBLIC_BASE_URL", "", _base_url,
            "Scheme, host and port the DIP calls, to rebuild the signed URL; default taken "
            "from the request.", ""),
    Setting("WEBHOOK_MAX_BODY_BYTES", "4194304", _int(1024, 100 * 1024 * 1024),
            "Largest accepted webhook delivery.", "4194304"),
    Setting("AIA_FETCH", "", _bool,
            "Fetch a missing intermediate from the leaf's AIA caIssuers URL (allow-listed "
            "hosts only); default on in Azure, off locally.", "false"),
    Setting("EVENTS_STORAGE", "", _optional_text,
            "Connection (string, or account URL; identity-based in Azure as "
            "EVENTS_STORAGE__queueServiceUri / __blobServiceUri) of the events queue, uploads "
            "and reports containers.", "UseDevelopmentStorage=true"),
    Setting("EVENTS_QUEUE", "dip-edge-events", _text,
            "Storage queue Event Grid delivers Key Vault and Storage events to.",
            "dip-edge-events"),
    Setting("REPORTS_CONTAINER", "validation-reports", _text,
            "Blob container for validation reports (JSON, named by secret and version).",
            "validation-reports"),
    Setting("UPLOADS_CONTAINER", "pfx-uploads", _text,
            "Blob container where pipelines drop PFX files to validate.", "pfx-uploads"),
    Setting("UPLOAD_IMPORT_TO_KEY_VAULT", "false", _bool,
            "Import an uploaded PFX that passes into the secret store as the current PFX.",
            "false"),
    Setting("UPLOAD_KEEP_BLOB", "false", _bool,
            "Keep an uploaded PFX in storage after handling it (default: delete it).", "false"),
    Setting("MONITOR_SCHEDULE", "0 0 6 * * *", _text,
            "NCRONTAB schedule of the expiry monitor (default daily at 06:00 UTC).",
            "0 0 6 * * *"),
    Setting("MONITOR_REPROVE_ATLAS", "false", _bool,
            "Let the monitor log in to GlobalSign Atlas with the stored credentials.", "false"),
    Setting("SECRET_NAME_SIGNING_CERT", "", _secret_name,
            "Secret (or Key Vault certificate) holding the participant's DIP signing/mTLS "
            "certificate, PEM or base64 PKCS#12, for the expiry monitor; none: not watched.", ""),
    Setting("SECRET_NAME_TLS_CERT", "", _secret_name,
            "Key Vault certificate (read as a secret) bound as the webhook's TLS certificate, "
            "for the expiry monitor; none: not watched.", ""),
    Setting("AIA_ALLOWED_HOSTS", "secure.globalsign.com,secure.globalsign.net", _host_list,
            "Hosts AIA caIssuers URLs may point at (comma-separated).",
            "secure.globalsign.com,secure.globalsign.net"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _attr(name: str) -> str:
    return name.lower()


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]
    errors: tuple[str, ...] = ()
    in_azure: bool = False
    _raw: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __getattr__(self, attr: str) -> Any:
        values = self.__dict__.get("values", {})
        if attr in values:
            return values[attr]
        raise AttributeError(attr)

    def errors_for(self, *names: str) -> list[str]:
        return [e for e in self.errors if e.split(":", 1)[0] in names]

    def require_valid(self, *names: str) -> None:
        """Raise ``config.invalid`` if any named setting (all, if none named) is bad."""
        bad = self.errors_for(*names) if names else list(self.errors)
        if bad:
            raise DipEdgeError(CONFIG_INVALID("; ".join(bad)))

    @property
    def state_dir(self) -> Path:
        return Path(self.values["dip_edge_state_dir"])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    errors: list[str] = []
    for setting in SETTINGS:
        raw = env.get(setting.name, "").strip() or setting.default
        try:
            value = setting.parse(raw) if raw else None
        except SettingError as exc:
            errors.append(f"{setting.name}: {exc}")
            value = setting.parse(setting.default) if setting.default else None
        values[_attr(setting.name)] = value
    in_azure = bool(env.get("WEBSITE_SITE_NAME"))
    if not values["secret_store"]:
        values["secret_store"] = "keyvault" if values["key_vault_url"] else "local"
    if values["secret_store"] == "keyvault" and not values["key_vault_url"]:  # noqa: S105
        errors.append("KEY_VAULT_URL: must be set when SECRET_STORE is keyvault")
    if not values["inbox_backend"]:
        values["inbox_backend"] = "blob" if values["inbox_storage"] else "sqlite"
    if values["inbox_backend"] == "blob" and not values["inbox_storage"]:
        errors.append("INBOX_STORAGE: must be set when INBOX_BACKEND is blob")
    if not env.get("AIA_FETCH", "").strip():
        values["aia_fetch"] = in_azure
    if values["expiry_error_days"] > values["expiry_warning_days"]:
        errors.append("EXPIRY_ERROR_DAYS: must not exceed EXPIRY_WARNING_DAYS")
    return Settings(values, tuple(errors), in_azure)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def read_text_setting(value: str) -> str:
    """The content of a setting that holds inline PEM/JSON or a file path."""
    if "-----BEGIN" in value or value.lstrip()[:1] in {"[", "{"}:
        return value
    return Path(value).read_text()
