"""Typed settings, read once from app settings (Azure) or the environment (locally).

Every setting is one typed field of :class:`Settings` (a :class:`Setting`: name, type,
default, doc, example), declared once below. ``local.settings.example.json``, the README
table and ``infra/`` are checked against these declarations by the tests.

Reading never raises: the Functions host imports ``function_app`` before anyone has
configured anything. A bad value is recorded as a :class:`SettingIssue` (and the field
falls back to its default). Each component names the settings it reads and, when it is
built, :meth:`Settings.require` raises ``config.invalid`` for exactly those, so a bad
value breaks only what reads it; ``/api/health`` lists every issue once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, overload
from urllib.parse import SplitResult, urlsplit

from shared.ncrontab import Schedule
from shared.problems import CONFIG_INVALID, DipEdgeError

DEFAULT_ATLAS_BASE_URL = "https://emea.api.hvca.globalsign.com:8443/v2"


class SettingError(ValueError):
    """Raised by a parser; :func:`load_settings` records it as a :class:`SettingIssue`."""


@dataclass(frozen=True)
class SettingIssue:
    """One bad value (or a missing one another setting needs)."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


# --- parsers: raw text -> typed value, or SettingError ------------------------------------

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


def _url(value: str, shape: str) -> SplitResult:
    """The parts of a URL; a SettingError saying ``shape`` for one urlsplit refuses (an
    unclosed ``[`` IPv6 bracket) or whose port is not a number up to 65535."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsed on access: raises for a bad port
    except ValueError:
        raise SettingError(f"must be {shape}, got {value!r}") from None
    return parts


def _https_url(value: str) -> str:
    parts = _url(value, "an https:// URL")
    if parts.scheme != "https" or not parts.hostname:
        raise SettingError(f"must be an https:// URL, got {value!r}")
    return value.rstrip("/")


def _optional_https_url(value: str) -> str | None:
    return _https_url(value) if value else None


def _base_url(value: str) -> str | None:
    if not value:
        return None
    parts = _url(value, "a URL such as https://host[:port]")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingError(f"must be a URL such as https://host[:port], got {value!r}")
    return value.rstrip("/")


def _pem_or_path(value: str) -> str | None:
    """Inline PEM, or the path of a PEM file (checked to exist)."""
    if not value:
        return None
    if "-----BEGIN" in value:
        return value
    # os.path.isfile: False for a path it cannot stat (a name too long), where
    # Path.is_file raises OSError.
    if not os.path.isfile(value):
        raise SettingError(f"is neither inline PEM nor the path of a file: {value!r}")
    return value


def _json_or_path(value: str) -> str | None:
    """Inline JSON, or the path of a JSON file (checked to exist)."""
    if not value:
        return None
    if value.lstrip()[:1] in {"[", "{"}:
        return value
    if not os.path.isfile(value):
        raise SettingError(f"is neither inline JSON nor the path of a file: {value!r}")
    return value


def _identities(value: str) -> str | None:
    """Identity rules (inline JSON or a file), or ``any``: the explicit, logged opt-out."""
    if value.strip().lower() == "any":
        return "any"
    return _json_or_path(value)


def _host_list(value: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def _table_name(value: str) -> str:
    if not (3 <= len(value) <= 63 and value.isascii() and value.isalnum()
            and value[0].isalpha()):
        raise SettingError(f"must be 3-63 letters and digits, starting with a letter, got "
                           f"{value!r}")
    return value


def _secret_name(value: str) -> str:
    if not value or len(value) > 127 or not all(c.isalnum() or c == "-" for c in value):
        raise SettingError(f"must be 1-127 letters, digits and dashes, got {value!r}")
    return value


def _optional_secret_name(value: str) -> str | None:
    return _secret_name(value) if value else None


def _ncrontab(value: str) -> str:
    """An NCRONTAB expression the Functions host (and the local host) can run."""
    from datetime import UTC, datetime

    try:
        Schedule.parse(value).next_after(datetime.now(UTC))
    except ValueError as exc:
        raise SettingError(f"is not a usable NCRONTAB schedule: {exc}") from None
    return value


# --- the declaration ----------------------------------------------------------------------

# Derives a default from the other settings' values, whether in Azure, and the environment.
type Derive[T] = Callable[[Mapping[str, Any], bool, Mapping[str, str]], T]


class Setting[T]:
    """One app setting, declared as a field of :class:`Settings`.

    The setting's name is the field's, upper-cased. ``default`` is raw text, parsed like a
    configured value; ``""`` with a ``derive`` means "derived from other settings" (or the
    platform's environment).
    Read on an instance, the field is the parsed value (type ``T``); on the class, it is
    this declaration, which components list as the settings they read.
    """

    name: str
    attr: str

    def __init__(self, default: str, parse: Callable[[str], T], doc: str, example: str = "",
                 *, derive: Derive[T] | None = None) -> None:
        self.default = default
        self.parse = parse
        self.doc = doc
        self.example = example
        self.derive = derive

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr
        self.name = attr.upper()

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, obj: Settings, owner: type | None = None) -> T: ...

    def __get__(self, obj: Settings | None, owner: type | None = None) -> Setting[T] | T:
        if obj is None:
            return self
        reads = obj._reads
        if reads is not None:
            reads.add(self.name)
        value: T = obj._values[self.attr]
        return value

    def of(self, settings: Settings) -> T:
        """This setting's value in ``settings`` (for code that holds the declaration)."""
        return self.__get__(settings)

    def __repr__(self) -> str:
        return f"Setting({self.name})"


def _secret_store(values: Mapping[str, Any], in_azure: bool, env: Mapping[str, str]) -> str:
    return "keyvault" if values["key_vault_url"] else "local"


def _inbox_backend(values: Mapping[str, Any], in_azure: bool, env: Mapping[str, str]) -> str:
    return "blob" if values["inbox_storage"] else "sqlite"


def _aia_fetch(values: Mapping[str, Any], in_azure: bool, env: Mapping[str, str]) -> bool:
    return in_azure


def _public_base_url(values: Mapping[str, Any], in_azure: bool,
                     env: Mapping[str, str]) -> str | None:
    """In Azure the app's own default hostname (App Service sets WEBSITE_HOSTNAME): safer
    than the request's Host header, which the caller writes."""
    host = env.get("WEBSITE_HOSTNAME", "").strip() if in_azure else ""
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?", host):
        return None  # absent, or not a host name: the request's URL, as without it
    return _base_url(f"https://{host}")


class Settings:
    """Every setting, parsed once; ``settings.<lowercase_name>`` is its typed value."""

    dip_edge_state_dir = Setting(
        ".dip-edge", _text,
        "Where the embedded defaults keep their files (local secret store, SQLite inbox, "
        "dev certificates).", ".dip-edge")
    secret_store = Setting(
        "", _choice("keyvault", "local"),
        "`keyvault` or `local`; default `keyvault` when KEY_VAULT_URL is set, else `local`.",
        "local", derive=_secret_store)
    key_vault_url = Setting(
        "", _optional_https_url, "The Key Vault's URI.", "https://example-vault.vault.azure.net/")
    secret_name_api_key = Setting(
        "globalsign-api-key", _secret_name, "Secret name of the GlobalSign API key.",
        "globalsign-api-key")
    secret_name_api_secret = Setting(
        "globalsign-api-secret", _secret_name, "Secret name of the GlobalSign API secret.",
        "globalsign-api-secret")
    secret_name_pfx = Setting(
        "globalsign-pfx", _secret_name,
        "Secret name of the GlobalSign Atlas access PFX (stored password-less, base64, "
        "content type application/x-pkcs12).", "globalsign-pfx")
    secret_name_credential_set = Setting(
        "globalsign-credential-set", _secret_name,
        "Secret name of the manifest naming the current versions of the API key, API "
        "secret and PFX (written last, so the three change together).",
        "globalsign-credential-set")
    key_vault_max_retries = Setting(
        "3", _int(0, 10), "Retries of a failed Key Vault request (the SDK's retry policy).", "3")
    atlas_base_url = Setting(
        DEFAULT_ATLAS_BASE_URL, _https_url, "GlobalSign Atlas HVCA API base URL.",
        DEFAULT_ATLAS_BASE_URL)
    atlas_ca_bundle = Setting(
        "", _pem_or_path,
        "CA certificates to verify the Atlas server with (inline PEM or path); default "
        "system trust.")
    atlas_timeout_seconds = Setting(
        "15", _float(0.1, 300), "Timeout of each call to GlobalSign Atlas, in seconds.", "15")
    atlas_max_retries = Setting(
        "3", _int(0, 10),
        "Retries on 429/503/202 and network errors before reporting GlobalSign "
        "unavailable.", "3")
    atlas_retry_backoff_seconds = Setting(
        "1", _float(0, 60),
        "First wait between tries to GlobalSign Atlas (doubling; Retry-After is honoured; "
        "each wait capped at ATLAS_TIMEOUT_SECONDS).", "1")
    pfx_trusted_issuers = Setting(
        "", _pem_or_path,
        "Extra issuer certificates the PFX checker accepts (inline PEM or path).")
    expiry_warning_days = Setting(
        "30", _int(0, 3650), "Days before expiry that warn.", "30")
    expiry_error_days = Setting(
        "7", _int(0, 3650), "Days before expiry that the monitor reports at error level.", "7")
    expiry_warning_fraction = Setting(
        "0.3", _float(0, 1),
        "Fraction of an end-entity certificate's lifetime left that warns (whichever comes "
        "first with EXPIRY_WARNING_DAYS); 0: days only.", "0.3")
    expiry_error_fraction = Setting(
        "0.05", _float(0, 1),
        "Fraction of an end-entity certificate's lifetime left that the monitor reports at "
        "error level (whichever comes first with EXPIRY_ERROR_DAYS); 0: days only.", "0.05")
    azure_sdk_log_level = Setting(
        "warning", _choice("debug", "info", "warning", "error"),
        "Level of the Azure SDKs' loggers (`azure`, including its HTTP request and response "
        "logging): `debug`, `info`, `warning` or `error`.", "warning")
    credentials_max_body_bytes = Setting(
        "2097152", _int(1024, 64 * 1024 * 1024),
        "Largest accepted credential submission (JSON or multipart).", "2097152")
    inbox_backend = Setting(
        "", _choice("sqlite", "blob"),
        "`sqlite` or `blob`; default `blob` when INBOX_STORAGE is set, else `sqlite`.",
        "sqlite", derive=_inbox_backend)
    inbox_storage = Setting(
        "", _optional_text,
        "Storage connection string or account URL (identity-based) for the inbox.")
    inbox_container = Setting("dip-inbox", _text, "Blob container of the inbox.", "dip-inbox")
    inbox_queue = Setting(
        "dip-inbox", _text,
        "Queue told about each stored delivery (pointers to its new messages), for "
        "downstream processing.", "dip-inbox")
    inbox_table = Setting(
        "dipinbox", _table_name, "Table of the inbox's transaction-ID index (Blob inbox).",
        "dipinbox")
    inbox_timeout_seconds = Setting(
        "10", _float(0.5, 120),
        "Time budget of one delivery's store, retries included; past it 503 "
        "inbox.unavailable.", "10")
    dip_client_trust_anchors = Setting(
        "", _pem_or_path,
        "Roots the DIP's client certificate must chain to; default the bundled GlobalSign "
        "roots.")
    dip_client_intermediates = Setting(
        "", _pem_or_path, "Extra intermediate certificates for chain building.")
    dip_client_identities = Setting(
        "", _identities,
        "JSON list of identity rules the client certificate must match (one rule "
        "entirely; `dip-edge identity-rule CERT` prints one). Required: without it every "
        "delivery is refused (503 config.invalid). `any` accepts any certificate that "
        "chains (test environments only; logged as a warning).")
    dip_client_eku = Setting(
        "client", _choice("client", "server", "any"),
        "Extended key usage the client certificate needs: `client`, `server` or `any`.",
        "client")
    dip_signature_mode = Setting(
        "required", _choice("required", "optional", "off"), "`required`, `optional` or `off`.",
        "required")
    dip_signer_trust_anchors = Setting(
        "", _pem_or_path,
        "Roots for the certificate in X-DIP-Signature-Certificate; default the client's.")
    dip_signer_intermediates = Setting(
        "", _pem_or_path, "Intermediates for the signer's chain; default the client's.")
    dip_signer_identities = Setting(
        "", _identities,
        "Identity rules for the signer's certificate (or `any`); default the client's "
        "(a signer must then pass the client's rules).")
    dip_signature_max_skew_seconds = Setting(
        "300", _int(1, 86400),
        "Accepted distance of X-DIP-Signature-Date from now, in seconds.", "300")
    dip_public_base_url = Setting(
        "", _base_url,
        "Scheme, host and port the DIP calls, to rebuild the signed URL; default in Azure "
        "`https://` + WEBSITE_HOSTNAME (the app's own hostname), locally taken from the "
        "request.", derive=_public_base_url)
    webhook_max_body_bytes = Setting(
        "4194304", _int(1024, 100 * 1024 * 1024), "Largest accepted webhook delivery.",
        "4194304")
    serve_head_timeout_seconds = Setting(
        "30", _float(1, 3600),
        "dip-edge serve: a request head still unfinished this long after it began is closed "
        "(for the first request, counted from the connection).", "30")
    serve_body_timeout_seconds = Setting(
        "60", _float(1, 3600),
        "dip-edge serve: a request body (or a response write) unfinished this long is "
        "closed.", "60")
    serve_idle_timeout_seconds = Setting(
        "60", _float(1, 3600),
        "dip-edge serve: a keep-alive connection idle this long between requests is closed.",
        "60")
    serve_max_connections = Setting(
        "1000", _int(1, 100000),
        "dip-edge serve: most connections at once (capped by the open-file limit less 64); "
        "when full, the longest unfinished or idle one is closed for a new one.", "1000")
    aia_fetch = Setting(
        "", _bool,
        "Fetch a missing intermediate from the leaf's AIA caIssuers URL (allow-listed "
        "hosts only); default on in Azure, off locally.", "false", derive=_aia_fetch)
    events_storage = Setting(
        "", _optional_text,
        "Connection (string, or account URL; identity-based in Azure as "
        "EVENTS_STORAGE__queueServiceUri / __blobServiceUri) of the events queue, uploads "
        "and reports containers.", "UseDevelopmentStorage=true")
    events_queue = Setting(
        "dip-edge-events", _text,
        "Storage queue Event Grid delivers Key Vault and Storage events to.", "dip-edge-events")
    reports_container = Setting(
        "validation-reports", _text,
        "Blob container for validation reports (JSON, named by secret and version).",
        "validation-reports")
    uploads_container = Setting(
        "pfx-uploads", _text, "Blob container where pipelines drop PFX files to validate.",
        "pfx-uploads")
    upload_import_to_key_vault = Setting(
        "false", _bool,
        "Import an uploaded PFX that passes into the secret store as the current PFX.", "false")
    upload_keep_blob = Setting(
        "false", _bool,
        "Keep an uploaded PFX in storage after handling it (default: delete it).", "false")
    monitor_schedule = Setting(
        "0 0 6 * * *", _ncrontab,
        "NCRONTAB schedule of the expiry monitor (default daily at 06:00 UTC).", "0 0 6 * * *")
    monitor_reprove_atlas = Setting(
        "false", _bool,
        "Let the monitor log in to GlobalSign Atlas with the stored credentials.", "false")
    secret_name_signing_cert = Setting(
        "", _optional_secret_name,
        "Secret (or Key Vault certificate) holding the participant's DIP signing/mTLS "
        "certificate, PEM or base64 PKCS#12, for the expiry monitor; none: not watched.")
    secret_name_tls_cert = Setting(
        "", _optional_secret_name,
        "Key Vault certificate (read as a secret) bound as the webhook's TLS certificate, "
        "for the expiry monitor; none: not watched.")
    aia_allowed_hosts = Setting(
        "secure.globalsign.com,secure.globalsign.net", _host_list,
        "Hosts AIA caIssuers URLs may point at (comma-separated).",
        "secure.globalsign.com,secure.globalsign.net")

    __slots__ = ("_values", "issues", "in_azure", "_reads")

    def __init__(self, values: Mapping[str, Any], issues: tuple[SettingIssue, ...] = (),
                 in_azure: bool = False) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "issues", issues)
        object.__setattr__(self, "in_azure", in_azure)
        object.__setattr__(self, "_reads", None)

    _values: dict[str, Any]
    issues: tuple[SettingIssue, ...]
    in_azure: bool
    _reads: set[str] | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("settings are read once and never changed")

    @property
    def errors(self) -> tuple[str, ...]:
        """Every issue as ``"NAME: message"`` (for display)."""
        return tuple(str(issue) for issue in self.issues)

    def issues_for(self, *settings: Setting[Any]) -> tuple[SettingIssue, ...]:
        names = {s.name for s in settings}
        return tuple(issue for issue in self.issues if issue.name in names)

    def require(self, *settings: Setting[Any]) -> None:
        """Raise ``config.invalid`` listing the issues of exactly these settings, if any."""
        bad = self.issues_for(*settings)
        if bad:
            raise DipEdgeError(CONFIG_INVALID("; ".join(str(issue) for issue in bad)))

    def without_issues(self, *settings: Setting[Any]) -> Settings:
        """These settings with the issues of ``settings`` dropped (values the caller
        replaces, such as a CLI option that overrides a bad setting)."""
        names = {s.name for s in settings}
        return Settings(self._values, tuple(i for i in self.issues if i.name not in names),
                        self.in_azure)

    @contextmanager
    def recording(self) -> Iterator[set[str]]:
        """The names of the settings read inside the block (to test what a component reads)."""
        reads: set[str] = set()
        object.__setattr__(self, "_reads", reads)
        try:
            yield reads
        finally:
            object.__setattr__(self, "_reads", None)

    @property
    def state_dir(self) -> Path:
        return Path(self.dip_edge_state_dir)

    def __repr__(self) -> str:
        return f"Settings(issues={len(self.issues)}, in_azure={self.in_azure})"


SETTINGS: tuple[Setting[Any], ...] = tuple(
    value for value in vars(Settings).values() if isinstance(value, Setting))
_BY_NAME: dict[str, Setting[Any]] = {s.name: s for s in SETTINGS}


def setting_named(name: str) -> Setting[Any] | None:
    """The declaration of ``NAME`` (a binding expression's ``%NAME%``), or None."""
    return _BY_NAME.get(name.upper())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse every setting once; never raises (bad values become :class:`SettingIssue`)."""
    env = os.environ if environ is None else environ
    in_azure = bool(env.get("WEBSITE_SITE_NAME"))
    values: dict[str, Any] = {}
    issues: list[SettingIssue] = []
    derived: list[tuple[Setting[Any], Derive[Any]]] = []
    for setting in SETTINGS:
        raw = env.get(setting.name, "").strip()
        if raw:
            try:
                values[setting.attr] = setting.parse(raw)
                continue
            except SettingError as exc:
                issues.append(SettingIssue(setting.name, str(exc)))
        if setting.derive is not None and not setting.default:
            derived.append((setting, setting.derive))
        else:
            values[setting.attr] = setting.parse(setting.default)
    for setting, derive in derived:  # after the settings they derive from
        values[setting.attr] = derive(values, in_azure, env)
    if values["secret_store"] == "keyvault" and not values["key_vault_url"]:  # noqa: S105
        issues.append(SettingIssue("KEY_VAULT_URL", "must be set when SECRET_STORE is keyvault"))
    if values["inbox_backend"] == "blob" and not values["inbox_storage"]:
        issues.append(SettingIssue("INBOX_STORAGE", "must be set when INBOX_BACKEND is blob"))
    if values["expiry_error_days"] > values["expiry_warning_days"]:
        issues.append(SettingIssue("EXPIRY_ERROR_DAYS", "must not exceed EXPIRY_WARNING_DAYS"))
    if values["expiry_error_fraction"] > values["expiry_warning_fraction"]:
        issues.append(SettingIssue("EXPIRY_ERROR_FRACTION",
                                   "must not exceed EXPIRY_WARNING_FRACTION"))
    return Settings(values, tuple(issues), in_azure)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def read_text_setting(value: str) -> str:
    """The content of a setting that holds inline PEM/JSON or a file path."""
    if "-----BEGIN" in value or value.lstrip()[:1] in {"[", "{"}:
        return value
    return Path(value).read_text()
