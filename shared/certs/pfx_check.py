"""The PFX checker: everything that can be said about a PFX without asking GlobalSign.

Build a :class:`PfxPolicy` once (``PfxPolicy.from_settings(settings)``) and call
:func:`check_pfx` for each file. ``check_pfx`` never raises for bad input: every problem
is a finding of the report. Findings name what is wrong and never carry the password or
key material.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from shared.certs import MAX_PFX_BYTES, facts
from shared.certs.issuer_trust import untrusted_issuer
from shared.certs.pkcs12 import OpenedPfx, open_pfx
from shared.certs.report import PfxReport
from shared.certs.roots import globalsign_roots
from shared.certs.webpki import MIN_RSA_BITS, PERMITTED_CURVES
from shared.problems import (
    CERT_EXPIRED,
    CERT_EXPIRING_SOON,
    CERT_IS_CA,
    CERT_MALFORMED,
    CERT_MISSING_CLIENT_AUTH,
    CERT_NOT_YET_VALID,
    CERT_WEAK_KEY,
    CERT_WEAK_SIGNATURE,
    CONFIG_INVALID,
    PFX_NOT_PKCS12,
    DipEdgeError,
    Finding,
)
from shared.settings import Setting, Settings, read_text_setting

logger = logging.getLogger("dip_edge.certs")

WEAK_HASHES = {"sha1": "SHA-1", "md5": "MD5"}
UNANALYSABLE = "The file could not be analysed."


@dataclass(frozen=True)
class PfxPolicy:
    trusted_issuers: tuple[x509.Certificate, ...] = ()  # extra issuers (--trust / setting)
    expiry_warning_days: int = 30
    max_bytes: int = MAX_PFX_BYTES

    SETTINGS: ClassVar[tuple[Setting[Any], ...]] = (Settings.pfx_trusted_issuers,
                                                     Settings.expiry_warning_days)

    @classmethod
    def from_settings(cls, settings: Settings) -> PfxPolicy:
        """Raises ``DipEdgeError(config.invalid)`` when the settings it reads are bad."""
        settings.require(*cls.SETTINGS)
        trusted: tuple[x509.Certificate, ...] = ()
        if settings.pfx_trusted_issuers:
            try:
                pem = read_text_setting(settings.pfx_trusted_issuers).encode()
                trusted = tuple(x509.load_pem_x509_certificates(pem))
            except (OSError, ValueError) as exc:
                raise DipEdgeError(CONFIG_INVALID(
                    f"PFX_TRUSTED_ISSUERS: not readable PEM certificates ({type(exc).__name__})"
                )) from None
        return cls(trusted_issuers=trusted, expiry_warning_days=settings.expiry_warning_days)

    def trusting(self, issuers: Iterable[x509.Certificate]) -> PfxPolicy:
        """This policy with more trusted issuers (the CLI's ``--trust``)."""
        return dataclasses.replace(self, trusted_issuers=(*self.trusted_issuers, *issuers))

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return (*self.trusted_issuers, *globalsign_roots())


def check_pfx(data: bytes | None, password: bytes | None, policy: PfxPolicy,
              *, now: datetime | None = None) -> PfxReport:
    now = now or datetime.now(UTC)
    try:
        return _check(data, password, policy, now)
    except Exception as exc:  # noqa: BLE001 - last line of defence: a finding, not a crash
        logger.warning("PFX check failed unexpectedly (%s)", type(exc).__name__)
        return PfxReport(errors=(PFX_NOT_PKCS12(UNANALYSABLE),), warnings=())


def _check(data: bytes | None, password: bytes | None, policy: PfxPolicy,
           now: datetime) -> PfxReport:
    opened = open_pfx(data, password, max_bytes=policy.max_bytes)
    if opened.errors:
        # Facts of the certificate the file seems to be about help to fix it; the
        # certificate checks wait until the file itself is right.
        return _report(opened, opened.errors, opened.warnings, now)
    leaf = opened.leaf
    if leaf is None:  # open_pfx reports a file without a certificate among its errors
        return _report(opened, opened.errors, (), now)
    roles = [(leaf, "The certificate")]
    roles += [(c, f"Chain certificate {n}") for n, c in enumerate(opened.chain, 1)]
    unreadable = [CERT_MALFORMED(f"{role} could not be fully parsed: {'; '.join(parts)}.")
                  for role, parts in ((r, facts.unreadable_parts(c)) for c, r in roles) if parts]
    if unreadable:
        return _report(opened, tuple(unreadable), opened.warnings, now)
    errors = list(certificate_errors(leaf, opened.chain, policy, now))
    warnings = [*opened.warnings, *certificate_warnings(leaf, policy, now)]
    return _report(opened, tuple(errors), tuple(warnings), now)


def certificate_errors(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...],
                       policy: PfxPolicy, now: datetime) -> Iterable[Finding]:
    """Every error-level finding about the leaf certificate, in reading order."""
    if now > leaf.not_valid_after_utc:
        yield CERT_EXPIRED(f"The certificate expired on {_day(leaf.not_valid_after_utc)}.")
    if now < leaf.not_valid_before_utc:
        yield CERT_NOT_YET_VALID(
            f"The certificate is valid only from {_moment(leaf.not_valid_before_utc)}.")
    weak_key = _weak_key(leaf.public_key())
    if weak_key:
        yield CERT_WEAK_KEY(weak_key)
    # A root's own signature proves nothing, so self-signed chain certificates are skipped.
    signed = [(leaf, "The certificate")]
    signed += [(c, "The chain certificate") for c in chain if c.subject != c.issuer]
    for cert, role in signed:
        weak = WEAK_HASHES.get(facts.signature_hash(cert) or "")
        if weak:
            yield CERT_WEAK_SIGNATURE(
                f"{role} {cert.subject.rfc4514_string()!r} is signed with {weak}, which TLS "
                "clients and GlobalSign no longer accept.")
    missing = _missing_client_auth(leaf)
    if missing:
        yield CERT_MISSING_CLIENT_AUTH(missing)
    if facts.is_ca(leaf):
        yield CERT_IS_CA("The certificate is a CA certificate (basic constraints CA:TRUE), "
                         "not an end-entity certificate for TLS client authentication.")
    issuer = untrusted_issuer(leaf, chain, policy.anchors)
    if issuer:
        yield issuer


def certificate_warnings(leaf: x509.Certificate, policy: PfxPolicy,
                         now: datetime) -> Iterable[Finding]:
    remaining = leaf.not_valid_after_utc - now
    days = int(remaining.total_seconds() // 86400)
    if remaining.total_seconds() >= 0 and days < policy.expiry_warning_days:
        yield CERT_EXPIRING_SOON(
            f"The certificate expires on {_day(leaf.not_valid_after_utc)}, in {days} day(s) "
            f"(warning threshold {policy.expiry_warning_days} days).")


def _weak_key(public_key) -> str | None:
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        return (f"The key is RSA {public_key.key_size} bits; at least {MIN_RSA_BITS} are "
                "required.")
    if isinstance(public_key, dsa.DSAPublicKey):
        return "The key is DSA, which TLS 1.3 and GlobalSign no longer support."
    if isinstance(public_key, ec.EllipticCurvePublicKey) and not isinstance(
            public_key.curve, PERMITTED_CURVES):
        return (f"The key uses the curve {public_key.curve.name}; only P-256, P-384 and "
                "P-521 are accepted.")
    return None


def _missing_client_auth(leaf: x509.Certificate) -> str | None:
    ekus = facts.extended_key_usages(leaf)
    if ekus is not None and x509.ExtendedKeyUsageOID.CLIENT_AUTH not in ekus:
        allowed = ", ".join(facts.describe_ekus(ekus, in_words=True)) or "nothing"
        return ("The extended key usage allows " + allowed + " but not TLS client "
                "authentication (clientAuth), which the mutual-TLS login needs.")
    usage = facts.key_usage_names(leaf)
    if usage is not None and "digitalSignature" not in usage:
        return ("The key usage lacks digitalSignature, so the key cannot sign the TLS "
                "handshake of a mutual-TLS login.")
    return None


def _report(opened: OpenedPfx, errors: tuple[Finding, ...], warnings: tuple[Finding, ...],
            now: datetime) -> PfxReport:
    leaf_facts = _facts(opened.leaf, now)
    return PfxReport(
        errors=errors,
        warnings=warnings,
        certificate=leaf_facts,
        chain=tuple(f for f in (_facts(c, now) for c in opened.chain) if f is not None),
        protection=opened.protection,
        leaf=opened.leaf,
        private_key=opened.private_key if not errors else None,
        chain_certificates=opened.chain,
    )


def _facts(cert: x509.Certificate | None, now: datetime):
    if cert is None:
        return None
    try:
        return facts.describe(cert, now=now)
    except Exception as exc:  # noqa: BLE001 - the facts are a courtesy; findings stand
        logger.info("certificate facts unavailable (%s)", type(exc).__name__)
        return None


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
