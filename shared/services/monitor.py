"""The expiry monitor: every certificate dip-edge knows, and how long each has left.

``run_checks(settings)`` reads

- the stored GlobalSign Atlas PFX (its leaf and the chain inside it), and with
  MONITOR_REPROVE_ATLAS logs in to Atlas with the stored API key and secret;
- the webhook's trust anchors and pinned certificates (``TrustSources``: DIP_CLIENT_* /
  DIP_SIGNER_*);
- the DIP signing certificate (SECRET_NAME_SIGNING_CERT) and the webhook's TLS
  certificate (SECRET_NAME_TLS_CERT), when those settings name a secret;

and grades each: ``error`` when expired or at most EXPIRY_ERROR_DAYS left (or
unreadable), ``warning`` at most EXPIRY_WARNING_DAYS left, else ``ok``. An end-entity
certificate is also graded by the fraction of its lifetime left (EXPIRY_WARNING_FRACTION,
EXPIRY_ERROR_FRACTION), whichever comes first: public TLS lifetimes fall to 200 days
(March 2026) and 100 days (March 2027), where a fixed 30 days is a third of a life. CA
certificates are graded by days only: a fraction of a root's 20-25 years is years. It
never raises for what it reads: an unreachable store or a bad setting is an ``error`` line.

``run_scheduled(settings)`` (the timer) logs one ``monitor`` record (:mod:`shared.telemetry`)
at the worst level, every credential in it, and keeps the report as ``monitor/latest.json``
in the report store (REPORTS_CONTAINER, or the state directory locally), where
:func:`latest_report` finds it for ``GET /api/credentials``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.problems import SECRET_NOT_FOUND, DipEdgeError
from shared.settings import Settings
from shared.telemetry import MAX_NESTED_ITEMS, emit

if TYPE_CHECKING:
    from cryptography import x509

logger = logging.getLogger("dip_edge.monitor")

# The monitor's own settings; the stores, policies and Atlas check theirs when opened.
MONITOR_SETTINGS = (Settings.expiry_warning_days, Settings.expiry_error_days,
                    Settings.expiry_warning_fraction, Settings.expiry_error_fraction,
                    Settings.monitor_reprove_atlas, Settings.secret_name_signing_cert,
                    Settings.secret_name_tls_cert)

OK, WARNING, ERROR = "ok", "warning", "error"
_RANK = {OK: 0, WARNING: 1, ERROR: 2}
LATEST_REPORT = "monitor/latest.json"


@dataclass(frozen=True)
class CredentialStatus:
    """One line of the monitor's table."""

    credential: str  # what it is to dip-edge, e.g. "GlobalSign Atlas PFX (globalsign-pfx)"
    level: str  # ok | warning | error
    detail: str
    subject: str | None = None
    thumbprint: str | None = None  # SHA-1, upper-case hex, as the portal shows it
    not_after: datetime | None = None
    days_left: int | None = None
    kind: str = "config"  # one of KINDS: stable, for alert rules
    lifetime_days: int | None = None
    fraction_left: float | None = None  # of the lifetime; None for CA certificates

    def to_dict(self) -> dict[str, Any]:
        return {"credential": self.credential, "kind": self.kind, "level": self.level,
                "detail": self.detail, "subject": self.subject, "thumbprint": self.thumbprint,
                "notAfter": self.not_after.isoformat() if self.not_after else None,
                "daysLeft": self.days_left, "lifetimeDays": self.lifetime_days,
                "fractionLeft": None if self.fraction_left is None
                else round(self.fraction_left, 4)}


# What each line is, for alert rules (README "Telemetry"): the Atlas access certificate and
# the issuers in its PFX, the Atlas login, the DIP's anchors and pinned certificates, the
# participant's signing and webhook TLS certificates (and their issuers), a setting.
KINDS = ("atlas_pfx", "atlas_pfx_issuer", "atlas_login", "dip_anchor", "dip_pinned",
         "signing_cert", "signing_cert_issuer", "tls_cert", "tls_cert_issuer", "config")


@dataclass(frozen=True)
class MonitorReport:
    checked_at: datetime
    warning_days: int
    error_days: int
    credentials: tuple[CredentialStatus, ...]
    atlas: dict | None = field(default=None)  # AtlasProof.to_dict() when re-proven
    warning_fraction: float = 0.0
    error_fraction: float = 0.0

    @property
    def level(self) -> str:
        return max((c.level for c in self.credentials), key=_RANK.__getitem__, default=OK)

    def count(self, level: str) -> int:
        return sum(1 for c in self.credentials if c.level == level)

    def to_dict(self) -> dict[str, Any]:
        return {"checkedAt": self.checked_at.isoformat(), "level": self.level,
                "thresholds": {"warningDays": self.warning_days,
                               "errorDays": self.error_days,
                               "warningFraction": self.warning_fraction,
                               "errorFraction": self.error_fraction},
                "counts": {lvl: self.count(lvl) for lvl in (OK, WARNING, ERROR)},
                "credentials": [c.to_dict() for c in self.credentials],
                "atlas": self.atlas}


@dataclass(frozen=True)
class Thresholds:
    warning_days: int
    error_days: int
    now: datetime
    warning_fraction: float = 0.0
    error_fraction: float = 0.0

    def grade(self, credential: str, cert: x509.Certificate, kind: str, *,
              note: str = "") -> CredentialStatus:
        """The status of one certificate by its days to expiry and, for an end-entity
        certificate, the fraction of its lifetime left (whichever comes first)."""
        from shared.certs.facts import describe

        facts = describe(cert, now=self.now)
        days = facts.days_to_expiry
        lifetime = (facts.not_after - facts.not_before).total_seconds()
        fraction = None
        if not facts.is_ca and lifetime > 0:
            fraction = min(1.0, max(0.0, (facts.not_after - self.now).total_seconds()
                                    / lifetime))
        share = f" ({fraction:.0%} of its lifetime)" if fraction is not None else ""

        def within(limit_days: int, limit_fraction: float) -> bool:
            return days <= limit_days or (fraction is not None and fraction <= limit_fraction)

        if self.now >= facts.not_after:
            level, detail = ERROR, f"expired {-days} day(s) ago"
        elif self.now < facts.not_before:
            level, detail = WARNING, f"not valid until {facts.not_before.isoformat()}"
        elif within(self.error_days, self.error_fraction):
            level, detail = ERROR, f"expires in {days} day(s){share}"
        elif within(self.warning_days, self.warning_fraction):
            level, detail = WARNING, f"expires in {days} day(s){share}"
        else:
            level, detail = OK, f"{days} day(s) left{share}"
        return CredentialStatus(credential, level, detail + note,
                                facts.common_name or facts.subject, facts.thumbprint_sha1,
                                facts.not_after, days, kind, int(lifetime // 86400), fraction)


def run_checks(settings: Settings, *, now: datetime | None = None) -> MonitorReport:
    """Check every known credential once (the CLI, the timer and the credentials API)."""
    now = now or datetime.now(UTC)
    limits = Thresholds(settings.expiry_warning_days, settings.expiry_error_days, now,
                        settings.expiry_warning_fraction, settings.expiry_error_fraction)
    lines: list[CredentialStatus] = []
    bad = settings.issues_for(*MONITOR_SETTINGS)
    if bad:  # the monitor still runs, on the defaults
        lines.append(CredentialStatus("monitor settings", ERROR,
                                      "; ".join(str(issue) for issue in bad)))
    atlas = _stored_credentials(settings, limits, lines)
    lines.extend(_policy_certificates(settings, limits))
    for name, label, kind in (
            (settings.secret_name_signing_cert, "DIP signing certificate", "signing_cert"),
            (settings.secret_name_tls_cert, "webhook TLS certificate", "tls_cert")):
        if name:
            lines.extend(_secret_certificate(settings, name, label, kind, limits))
    return MonitorReport(now, limits.warning_days, limits.error_days, tuple(lines), atlas,
                         limits.warning_fraction, limits.error_fraction)


def _store(settings: Settings):
    from shared.vault import open_store

    return open_store(settings)


def _stored_credentials(settings: Settings, limits: Thresholds,
                        lines: list[CredentialStatus]) -> dict | None:
    """The Atlas PFX's leaf and chain; re-proves the credentials if asked. Returns the proof."""
    from shared.certs.pfx_check import PfxPolicy, check_pfx
    from shared.vault.credentials import load_credentials

    label = f"GlobalSign Atlas PFX ({settings.secret_name_pfx})"
    try:
        stored = load_credentials(_store(settings), settings)
    except DipEdgeError as err:
        level = WARNING if err.is_(SECRET_NOT_FOUND) else ERROR
        detail = ("no GlobalSign credentials are stored" if level == WARNING
                  else f"{err.code}: {err.finding.detail}")
        lines.append(CredentialStatus(label, level, detail, kind="atlas_pfx"))
        return None
    try:
        report = check_pfx(stored.pfx, None, PfxPolicy.from_settings(settings), now=limits.now)
    except DipEdgeError as err:  # config.invalid (PFX_TRUSTED_ISSUERS)
        lines.append(CredentialStatus(label, ERROR, f"{err.code}: {err.finding.detail}",
                                      kind="atlas_pfx"))
        return None
    if report.leaf is None:
        first = report.errors[0]
        lines.append(CredentialStatus(label, ERROR, f"unreadable: {first.code}: {first.detail}",
                                      kind="atlas_pfx"))
        return None
    lines.append(limits.grade(label, report.leaf, "atlas_pfx"))
    for cert in report.chain_certificates:
        lines.append(limits.grade(f"issuer in {settings.secret_name_pfx}", cert,
                                  "atlas_pfx_issuer"))
    if not settings.monitor_reprove_atlas:
        return None
    return _reprove(settings, stored, report, lines)


def _reprove(settings: Settings, stored, report,
             lines: list[CredentialStatus]) -> dict | None:
    from shared.atlas.client import AtlasConnection
    from shared.validation import validate_credentials

    label = "GlobalSign Atlas login (stored API key, secret and PFX)"
    try:
        proof = validate_credentials(report, stored.api_key, stored.api_secret,
                                     lambda: AtlasConnection.from_settings(settings)).proof
    except DipEdgeError as err:  # config.invalid: a bad ATLAS_* setting
        lines.append(CredentialStatus(label, ERROR, f"{err.code}: {err.finding.detail}",
                                      kind="atlas_login"))
        return None
    if proof is None:  # the stored PFX fails a check (graded above): Atlas is not asked
        lines.append(CredentialStatus(label, ERROR, "not tried: the stored PFX does not pass "
                                      f"the checks ({report.errors[0].code})"
                                      if report.errors else "not tried: no API key or secret"))
        return None
    if proof.proven:
        lines.append(CredentialStatus(label, OK, "proven", kind="atlas_login"))
    else:
        first = proof.errors[0]
        # Atlas being busy says nothing about the credentials: warn, don't alarm.
        level = WARNING if proof.unavailable else ERROR
        lines.append(CredentialStatus(label, level, f"{first.code}: {first.detail}",
                                      kind="atlas_login"))
    return proof.to_dict()


def _policy_certificates(settings: Settings, limits: Thresholds) -> Iterable[CredentialStatus]:
    """The webhook's anchors and pinned certificates, each once, named by every role."""
    from cryptography.hazmat.primitives import hashes

    from shared.certs.trust_config import TrustSources

    roles: dict[bytes, list[str]] = {}
    certs: dict[bytes, Any] = {}
    for who, role in (("DIP client", "client"), ("DIP signer", "signer")):
        try:
            # The anchors expire whether or not identity rules are set yet (health says so).
            policy = TrustSources.from_settings(settings, role).build(inspect=True)
        except DipEdgeError as err:
            yield CredentialStatus(f"{who} certificate policy", ERROR,
                                   f"{err.code}: {err.finding.detail}")
            continue
        pinned = {c.fingerprint(hashes.SHA256()) for c in policy.pinned}
        for cert in (*policy.anchors, *policy.pinned):
            key = cert.fingerprint(hashes.SHA256())
            kind = "trust anchor" if cert in policy.anchors else "pinned certificate"
            if key in pinned and kind == "trust anchor":
                kind = "pinned trust anchor"
            label = f"{who} {kind}"
            certs[key] = cert
            if label not in roles.setdefault(key, []):
                roles[key].append(label)
    for key, cert in certs.items():
        kind = "dip_pinned" if any("pinned" in r for r in roles[key]) else "dip_anchor"
        yield limits.grade(", ".join(roles[key]), cert, kind)


def _secret_certificate(settings: Settings, name: str, label: str, kind: str,
                        limits: Thresholds) -> list[CredentialStatus]:
    """A certificate kept in the secret store: PEM, or base64 PKCS#12 (a Key Vault
    certificate read through the secrets API)."""
    credential = f"{label} ({name})"
    try:
        secret = _store(settings).get_secret(name)
    except DipEdgeError as err:
        return [CredentialStatus(credential, ERROR, f"{err.code}: {err.finding.detail}",
                                 kind=kind)]
    try:
        certs = _certificates(secret.value, secret.content_type)
    except UnreadableSecret as why:
        return [CredentialStatus(credential, ERROR, str(why), kind=kind)]
    return [limits.grade(credential, certs[0], kind)] + [
        limits.grade(f"issuer in {name}", cert, f"{kind}_issuer") for cert in certs[1:]]


class UnreadableSecret(ValueError):
    """A watched secret holds no certificate dip-edge can read; the text says why."""


def _certificates(value: str, content_type: str | None) -> list[x509.Certificate]:
    """[leaf, *chain] from a secret value; ``UnreadableSecret`` says why they cannot be."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    if "-----BEGIN CERTIFICATE-----" in value:
        try:
            return x509.load_pem_x509_certificates(value.encode())
        except ValueError:
            raise UnreadableSecret("the secret holds PEM that is not a readable certificate") \
                from None
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
        loaded = pkcs12.load_pkcs12(data, None)
    except (binascii.Error, ValueError):
        raise UnreadableSecret(f"the secret ({content_type or 'no content type'}) is neither "
                               "PEM certificates nor a password-less base64 PKCS#12") from None
    if loaded.cert is None:
        raise UnreadableSecret("the PKCS#12 in the secret holds no certificate")
    return [loaded.cert.certificate] + [c.certificate for c in loaded.additional_certs]


def run_scheduled(settings: Settings) -> None:
    """The timer: check, log one ``monitor`` record, keep the report for the API."""
    report = run_checks(settings)
    log_run(report)
    try:
        from shared.storage.reports import open_reports

        open_reports(settings).put(LATEST_REPORT, report.to_dict())
    except DipEdgeError as err:
        logger.error("expiry monitor: the report could not be kept (%s: %s)", err.code,
                     err.finding.detail)


def log_run(report: MonitorReport) -> dict[str, Any]:
    """The ``monitor`` record: the counts, the nearest expiry and every credential line."""
    dated = [(c.days_left, n, c) for n, c in enumerate(report.credentials)
             if c.days_left is not None]
    worst = min(dated)[2] if dated else None  # the first of the nearest
    level = {OK: logging.INFO, WARNING: logging.WARNING, ERROR: logging.ERROR}[report.level]
    return emit(logger, "monitor", {
        "level": report.level, "checked": len(report.credentials),
        "errors": report.count(ERROR), "warnings": report.count(WARNING),
        "nearest": worst.credential if worst else None,
        "nearestDaysLeft": worst.days_left if worst else None,
        "thresholds": report.to_dict()["thresholds"],
        "credentials": [c.to_dict() for c in report.credentials],
    }, level=level, items=MAX_NESTED_ITEMS)


def latest_report(settings: Settings) -> dict | None:
    """The last report the timer kept, or None (never run, or its store unreachable)."""
    from shared.storage.reports import open_reports

    try:
        return open_reports(settings).get(LATEST_REPORT)
    except DipEdgeError as err:
        logger.warning("the latest monitor report could not be read (%s)", err.code)
    except ValueError:  # not JSON: the next run replaces it
        logger.warning("the latest monitor report is not readable JSON; ignored")
    return None
