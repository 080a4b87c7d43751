"""The webhook's certificate policy: is this certificate the DIP's, and may we trust it now?

Build a :class:`CertificatePolicy` once (``for_client`` / ``for_signer`` from settings, or
directly), then call :meth:`~CertificatePolicy.check_header` or
:meth:`~CertificatePolicy.check` per request::

    policy = CertificatePolicy.for_client(settings)       # config.invalid on bad settings
    verdict = policy.check_header(request.headers.get("x-arr-clientcert"))
    if not verdict.accepted:
        raise DipEdgeError(verdict.errors[0])

Checks, in order: decodable (``clientcert.malformed``), inside its validity period
(``clientcert.expired``), a chain to the trust anchors with the required extended key
usage, by ``cryptography.x509.verification`` (``clientcert.untrusted``), then the
identity rules (``clientcert.identity_mismatch``). From settings the policy fails closed:
with no identity rules configured it is not built at all (:func:`identities_missing`, a 503
``config.invalid`` the webhook answers every delivery with); ``any`` is the explicit,
logged opt-out for test environments. Verdicts for the current time are
cached by the SHA-256 of the DER (and by the header text they arrived in), in bounded
LRUs whose entries expire after a short TTL and never outlive any certificate of the chain.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from shared.certs.aia import AiaFetcher, AiaResult
from shared.certs.facts import describe
from shared.certs.identity import IdentityRules, Presented
from shared.certs.report import CertificateFacts
from shared.certs.roots import globalsign_roots
from shared.certs.webpki import USAGE_NAMES, chain_problem, extension_policies, key_problem
from shared.problems import (
    CERT_EXPIRING_SOON,
    CLIENTCERT_EXPIRED,
    CLIENTCERT_IDENTITY_MISMATCH,
    CLIENTCERT_MALFORMED,
    CLIENTCERT_MISSING,
    CLIENTCERT_NO_IDENTITY_RULES,
    CLIENTCERT_UNTRUSTED,
    CONFIG_INVALID,
    DipEdgeError,
    Finding,
)
from shared.settings import Setting, Settings, read_text_setting

# What cryptography raises for certificate bytes it cannot make sense of.
UNPARSABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
              x509.DuplicateExtension, x509.UnsupportedGeneralNameType)

log = logging.getLogger("dip_edge.certs")

USAGES: dict[str, tuple[x509.ObjectIdentifier, ...]] = {
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    # Publicly trusted TLS certificates issued since June 2026 carry serverAuth only.
    "any": (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH),
}
MAX_CERTIFICATE_BYTES = 16 * 1024  # real leaves are 1-3 KB; anything larger is hostile
CACHE_SIZE = 256
CACHE_TTL_SECONDS = 300.0  # short, so configuration and revocation-by-redeploy take effect
_PEM_ARMOUR = re.compile(rb"-----(BEGIN|END) CERTIFICATE-----")
_PYTHON_VALIDATOR = re.compile(r"Python extension validator failed: \w+: ")


@dataclass(frozen=True)
class PolicyVerdict:
    """The policy's answer on one certificate. ``chain`` is leaf-first, anchor last."""

    accepted: bool
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    certificate: CertificateFacts | None
    chain: tuple[x509.Certificate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "certificate": self.certificate.to_dict() if self.certificate else None,
        }


def _rejected(finding: Finding, facts: CertificateFacts | None = None) -> PolicyVerdict:
    return PolicyVerdict(False, (finding,), (), facts, ())


class _VerdictCache:
    """Bounded LRU of verdicts by key, each with its own wall-clock deadline."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[float, PolicyVerdict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: float) -> tuple[float, PolicyVerdict] | None:
        """The live ``(deadline, verdict)`` for ``key``, or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, deadline: float, verdict: PolicyVerdict) -> None:
        with self._lock:
            self._entries[key] = (deadline, verdict)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class CertificatePolicy:
    """Trust anchors, intermediates, required usage and identity rules, built once."""

    def __init__(
        self,
        *,
        anchors: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate] = (),
        identities: IdentityRules | None = None,
        usage: str = "client",
        aia: AiaFetcher | None = None,
        max_chain_depth: int | None = None,
        expiry_warning_days: int = 30,
        pinned: Sequence[x509.Certificate] = (),
        label: str = "client certificate",
        cache_size: int = CACHE_SIZE,
        cache_ttl: float = CACHE_TTL_SECONDS,
        warnings: Sequence[Finding] | None = None,
    ) -> None:
        if usage not in USAGES:
            raise ValueError(f"usage must be one of {', '.join(USAGES)}, got {usage!r}")
        if not anchors:
            raise ValueError("a certificate policy needs at least one trust anchor")
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self.pinned = tuple(pinned)
        self.identities = identities
        self.usage = usage
        self.aia = aia
        self.label = label
        self.expiry_warning_days = expiry_warning_days
        self._store = Store(list(self.anchors))
        self._max_chain_depth = max_chain_depth
        self._usages = USAGES[usage]
        self._extension_policies = {
            oid: extension_policies(oid) for oid in self._usages}
        self._cache = _VerdictCache(cache_size)  # by the DER's SHA-256
        # The same verdicts by the exact header text they came in: a repeated header (the
        # DIP presents the same certificate on every request) skips base64 and hashing.
        # Same text, same DER, same verdict; entries share the DER entry's deadline.
        self._by_text = _VerdictCache(cache_size)
        self._cache_ttl = cache_ttl
        self.warnings: tuple[Finding, ...] = tuple(warnings) if warnings is not None else (
            () if identities else (CLIENTCERT_NO_IDENTITY_RULES(
                f"no identity rules are configured for the {label}: any certificate that "
                "chains to the trust anchors is accepted"),))

    # --- construction from settings --------------------------------------------------
    @classmethod
    def for_client(cls, settings: Settings) -> CertificatePolicy:
        """The webhook's X-ARR-ClientCert policy (DIP_CLIENT_*); ``config.invalid`` if bad
        or if no identity rules are configured (503, see :func:`identities_missing`)."""
        return _from_settings(settings, "client")

    @classmethod
    def for_signer(cls, settings: Settings) -> CertificatePolicy:
        """The X-DIP-Signature-Certificate policy: DIP_SIGNER_*, each defaulting to DIP_CLIENT_*."""
        return _from_settings(settings, "signer")

    # --- checks ------------------------------------------------------------------------
    def check_header(self, value: str | None, *, at: dt.datetime | None = None) -> PolicyVerdict:
        """Check an ``X-ARR-ClientCert`` value: base64 DER on one line (PEM armour tolerated)."""
        if value is None or not value.strip():
            return _rejected(CLIENTCERT_MISSING(f"no {self.label} was presented"))
        try:
            return self.check_text(value, self._header_der, at=at)
        except DipEdgeError as err:
            if err.is_(CLIENTCERT_MALFORMED):  # the header itself: a verdict, not a fault
                return _rejected(err.finding)
            raise

    def _header_der(self, value: str) -> bytes:
        """The DER in a header value; ``DipEdgeError(clientcert.malformed)`` if none."""
        raw = value.encode("ascii", "replace")
        if len(raw) > MAX_CERTIFICATE_BYTES * 2:
            raise DipEdgeError(CLIENTCERT_MALFORMED(f"the {self.label} header is too large"))
        if b"-----" in raw:
            raw = _PEM_ARMOUR.sub(b"", raw)
        text = b"".join(raw.split())  # far cheaper than a regex on the hot path
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DipEdgeError(CLIENTCERT_MALFORMED(
                f"the {self.label} header is not base64")) from None

    def check_text(self, value: str, decode: Callable[[str], bytes], *,
                   at: dt.datetime | None = None) -> PolicyVerdict:
        """Check a certificate carried as text (a header value).

        ``decode(value)`` gives the DER, or raises (nothing is cached then). Verdicts are
        cached by the exact text as well as by the DER, so the same header again costs a
        dictionary lookup. ``at`` bypasses both caches.
        """
        wall = time.time()
        if at is None:
            entry = self._by_text.get(value, wall)
            if entry is not None:
                return entry[1]
        der = decode(value)
        verdict, deadline = self._check(der, at, wall)
        if deadline is not None:
            self._by_text.put(value, deadline, verdict)
        return verdict

    def check(self, certificate: x509.Certificate | bytes, *,
              at: dt.datetime | None = None) -> PolicyVerdict:
        """Check a certificate (object or DER). ``at`` (default now) bypasses the cache."""
        return self._check(certificate, at, time.time())[0]

    def _check(self, certificate: x509.Certificate | bytes, at: dt.datetime | None,
               wall: float) -> tuple[PolicyVerdict, float | None]:
        """The verdict, and the deadline it is cached until (``None``: not cached)."""
        if isinstance(certificate, x509.Certificate):
            der = certificate.public_bytes(serialization.Encoding.DER)
        else:
            der = bytes(certificate)
            certificate = None
        if not der:
            return _rejected(CLIENTCERT_MISSING(f"no {self.label} was presented")), None
        if len(der) > MAX_CERTIFICATE_BYTES:
            return _rejected(CLIENTCERT_MALFORMED(f"the {self.label} is too large")), None
        key = hashlib.sha256(der).digest()
        if at is None:
            entry = self._cache.get(key, wall)
            if entry is not None:
                return entry[1], entry[0]
        now = at or dt.datetime.fromtimestamp(wall, dt.UTC)
        try:
            # cryptography parses lazily: a hostile key or extension raises on first use.
            if certificate is None:
                certificate = x509.load_der_x509_certificate(der)
            verdict, cacheable = self._evaluate(certificate, now)
        except UNPARSABLE:
            return _rejected(CLIENTCERT_MALFORMED(
                f"the {self.label} is not a readable DER X.509 certificate")), None
        if at is not None or not cacheable:
            return verdict, None
        deadline = self._deadline(verdict, certificate, wall)
        self._cache.put(key, deadline, verdict)
        return verdict, deadline

    def _deadline(self, verdict: PolicyVerdict, leaf: x509.Certificate, wall: float) -> float:
        deadline = wall + self._cache_ttl
        for cert in verdict.chain or (leaf,):
            deadline = min(deadline, cert.not_valid_after_utc.timestamp())
            if cert.not_valid_before_utc.timestamp() > wall:  # rejected as not yet valid
                deadline = min(deadline, cert.not_valid_before_utc.timestamp())
        return deadline

    def _evaluate(self, cert: x509.Certificate,
                  now: dt.datetime) -> tuple[PolicyVerdict, bool]:
        try:
            facts = describe(cert, now=now)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            return _rejected(CLIENTCERT_MALFORMED(
                f"the {self.label} could not be read: {type(exc).__name__}")), True
        now = now.replace(microsecond=0)  # validity has one-second granularity (RFC 5280)
        if now < cert.not_valid_before_utc:
            return _rejected(CLIENTCERT_EXPIRED(
                f"the {self.label} is not valid until {cert.not_valid_before_utc.isoformat()}"),
                facts), True
        if now > cert.not_valid_after_utc:
            return _rejected(CLIENTCERT_EXPIRED(
                f"the {self.label} expired on {cert.not_valid_after_utc.isoformat()}"),
                facts), True
        problem = key_problem(cert) or (
            "its serial number is not a positive integer" if cert.serial_number <= 0 else None)
        if problem:
            return _rejected(CLIENTCERT_UNTRUSTED(f"the {self.label} is not acceptable: {problem}"),
                             facts), True
        chain, failure, cacheable = self._build_chain(cert, now)
        if chain is None:
            return _rejected(CLIENTCERT_UNTRUSTED(failure), facts), cacheable
        warnings = list(self.warnings)
        if self.identities is not None:
            presented = Presented.of(cert, chain[1] if len(chain) > 1 else None)
            if self.identities.match(presented) is None:
                return PolicyVerdict(False, (CLIENTCERT_IDENTITY_MISMATCH(
                    f"the {self.label} is not an accepted identity: "
                    f"{self.identities.explain(presented)}"),), (), facts, chain), cacheable
        expires_in = min(c.not_valid_after_utc for c in chain) - now
        if expires_in <= dt.timedelta(days=self.expiry_warning_days):
            warnings.append(CERT_EXPIRING_SOON(
                f"the {self.label} or its chain expires in {expires_in.days} day(s)"))
        return PolicyVerdict(True, (), tuple(warnings), facts, chain), cacheable

    def _build_chain(self, leaf: x509.Certificate, now: dt.datetime
                     ) -> tuple[tuple[x509.Certificate, ...] | None, str, bool]:
        """(chain, failure detail, cacheable): try each usage, then AIA for a missing issuer."""
        intermediates = list(self.intermediates)
        cacheable = True
        notes: list[str] = []
        while True:
            reasons = []
            for usage, policies in self._extension_policies.items():
                builder = PolicyBuilder().store(self._store).time(now)
                if self._max_chain_depth is not None:
                    builder = builder.max_chain_depth(self._max_chain_depth)
                builder = builder.extension_policies(ca_policy=policies[0],
                                                     ee_policy=policies[1])
                try:
                    verified = builder.build_client_verifier().verify(leaf, intermediates)
                except VerificationError as exc:
                    reasons.append((usage, _PYTHON_VALIDATOR.sub("", str(exc))))
                    continue
                chain = tuple(verified.chain)
                problem = chain_problem(chain, self.anchors)
                if problem:
                    reasons.append((usage, problem))
                    continue
                return chain, "", cacheable
            fetched = self._fetch_missing_issuer(leaf, intermediates)
            if fetched is None:
                break
            more, result = fetched
            cacheable = cacheable and result.complete
            notes += result.notes
            if not more:
                break
            intermediates += more
        detail = "; ".join(
            (f"as a {USAGE_NAMES[u]} certificate: " if len(reasons) > 1 else "") + r
            for u, r in reasons)
        if leaf.issuer not in {c.subject for c in (*self.anchors, *intermediates)}:
            detail = (f"its issuer '{leaf.issuer.rfc4514_string()}' is neither a trust anchor "
                      f"nor a known intermediate; {detail}")
        if notes:
            detail += "; " + "; ".join(notes)
        return None, f"the {self.label} does not chain to a trust anchor ({detail})", cacheable

    def _fetch_missing_issuer(self, leaf: x509.Certificate,
                              intermediates: list[x509.Certificate]
                              ) -> tuple[list[x509.Certificate], AiaResult] | None:
        """Walk up from the leaf; fetch (by AIA) the issuer of the first certificate whose
        issuer we lack. ``None`` when nothing is missing (the failure is something else)."""
        if self.aia is None:
            return None
        anchor_subjects = {a.subject for a in self.anchors}
        by_subject = {c.subject: c for c in intermediates}
        node, seen = leaf, set()
        while node.issuer not in anchor_subjects:
            parent = by_subject.get(node.issuer)
            if parent is None:
                result = self.aia.fetch_issuers(node)
                return [c for c in result.certificates if c not in intermediates], result
            if parent.subject in seen or parent.subject == parent.issuer:
                return None
            seen.add(parent.subject)
            node = parent
        return None


# --- settings ----------------------------------------------------------------------------
ANY_IDENTITY = "any"  # the identity setting's explicit opt-out (test environments only)
BUNDLED_ANCHORS = "bundled GlobalSign roots"
# The DIP keeps undelivered messages and retries; a configuration change restarts the app.
MISCONFIGURED_RETRY_AFTER_SECONDS = 300
# (anchors, intermediates, identities) of each role, and what both roles read.
_ROLE_SETTINGS = {
    "client": (Settings.dip_client_trust_anchors, Settings.dip_client_intermediates,
               Settings.dip_client_identities),
    "signer": (Settings.dip_signer_trust_anchors, Settings.dip_signer_intermediates,
               Settings.dip_signer_identities),
}
COMMON_SETTINGS = (Settings.dip_client_eku, Settings.aia_fetch, Settings.aia_allowed_hosts)
# Every setting a policy may read (a signer's falls back to the client's).
TRUST_SETTINGS = (*_ROLE_SETTINGS["client"], *_ROLE_SETTINGS["signer"], *COMMON_SETTINGS)
Source = tuple[str, str]  # (where it comes from, for errors: a setting or option; raw value)


@dataclass(frozen=True)
class TrustSources:
    """A policy's configuration as raw (name, value) pairs: settings, or CLI overrides.

    Hashable, so :meth:`build` returns one policy (and one verdict cache) per distinct
    configuration however often callers ask for it.
    """

    role: str  # "client" or "signer"
    anchors: Source | None  # None: the bundled GlobalSign roots
    intermediates: tuple[Source, ...]
    identities: Source | None  # None: not configured (fail closed); value "any": opt-out
    usage: str
    aia_hosts: tuple[str, ...] | None  # None: AIA fetching off
    # The webhook never shows an accepted certificate's warnings, so it does not read
    # EXPIRY_WARNING_DAYS (a bad value there must not stop deliveries); check-cert does.
    expiry_warning_days: int = 30
    # With identities None: the settings to set, named by the fail-closed answer.
    missing: tuple[str, ...] = ()

    @staticmethod
    def _sources(settings: Settings, role: str) -> tuple[Setting[str | None], ...]:
        """(anchors, intermediates, identities) of ``role``: DIP_CLIENT_*, or for the signer
        each DIP_SIGNER_* that is set (or bad), else the client's."""
        chosen = _ROLE_SETTINGS["client"]
        if role == "signer":
            chosen = tuple(
                own if own.of(settings) is not None or settings.issues_for(own) else client
                for own, client in zip(_ROLE_SETTINGS["signer"], chosen, strict=True))
        return chosen

    @classmethod
    def settings_read(cls, settings: Settings, role: str) -> tuple[Setting[Any], ...]:
        """Every setting the policy of ``role`` reads with these settings."""
        return (*cls._sources(settings, role), *COMMON_SETTINGS)

    @classmethod
    def from_settings(cls, settings: Settings, role: str) -> TrustSources:
        """Read DIP_CLIENT_* (or DIP_SIGNER_*, each falling back to the client's) and AIA_*;
        ``config.invalid`` when one of those is bad."""
        settings.require(*cls.settings_read(settings, role))
        anchors, intermediates, identities = cls._sources(settings, role)

        def source(setting: Setting[str | None]) -> Source | None:
            value = setting.of(settings)
            return (setting.name, value) if value else None

        extra = source(intermediates)
        return cls(
            role=role,
            anchors=source(anchors),
            intermediates=(extra,) if extra else (),
            identities=source(identities),
            usage=settings.dip_client_eku,
            aia_hosts=tuple(settings.aia_allowed_hosts) if settings.aia_fetch else None,
            missing=() if identities.of(settings) else tuple(
                missing_identities(settings) or (identities.name,)),
        )

    def build(self, *, inspect: bool = False) -> CertificatePolicy:
        """The policy; ``config.invalid`` naming the setting (or option) that is bad, or the
        identity rules that are missing (:func:`identities_missing`).

        ``inspect`` builds it even without identity rules, for showing the anchors and
        running the chain checks (health, ``check-cert``); such a policy has no warnings
        and must never decide a delivery.
        """
        if self.identities is None and not inspect:
            raise identities_missing(self.missing)
        return _build_policy(self)

    @property
    def anchors_source(self) -> str:
        """Where the trust anchors come from: a setting or option, or the bundled roots."""
        return self.anchors[0] if self.anchors else BUNDLED_ANCHORS


def missing_identities(settings: Settings) -> list[str]:
    """The identity settings the webhook needs and lacks (empty: it may accept deliveries).

    No client rules: DIP_CLIENT_IDENTITIES, and DIP_SIGNER_IDENTITIES too when signatures
    are required and it is unset. Signer rules left unset otherwise inherit the client's:
    a signer must then pass the client's rules, never anything looser.
    """
    def configured(setting: Setting[str | None]) -> bool:
        return bool(setting.of(settings) or settings.issues_for(setting))

    client, signer = Settings.dip_client_identities, Settings.dip_signer_identities
    if configured(client):
        return []
    missing = [client.name]
    if settings.dip_signature_mode == "required" and not configured(signer):
        missing.append(signer.name)
    return missing


def identities_missing(missing: Sequence[str]) -> DipEdgeError:
    """The fail-closed answer: 503 ``config.invalid`` with ``Retry-After``, so the DIP keeps
    the messages and retries once the operator has set the rules. Names settings only."""
    names = " and ".join(missing)
    return DipEdgeError(CONFIG_INVALID(
        f"No identity rules are configured, so no delivery is accepted: set {names} to "
        "the DIP's identity rules (`dip-edge identity-rule CERT` prints one), or "
        f"DIP_CLIENT_IDENTITIES={ANY_IDENTITY} in a test environment only."),
        status=503, retry_after=MISCONFIGURED_RETRY_AFTER_SECONDS)


def trust_summary(sources: TrustSources, policy: CertificatePolicy) -> dict[str, Any]:
    """Which anchors and identity rules are in force for one role (public facts only)."""
    if sources.identities is None:
        identities: dict[str, Any] = {"mode": "missing", "settings": list(sources.missing)}
    elif sources.identities[1] == ANY_IDENTITY:
        identities = {"mode": "any", "setting": sources.identities[0]}
    else:
        identities = {"mode": "rules", "setting": sources.identities[0],
                      "rules": len(policy.identities.rules)}
    return {
        "identities": identities,
        "anchors": {
            "source": sources.anchors_source,
            "certificates": [{"subject": c.subject.rfc4514_string(),
                              "sha256": c.fingerprint(hashes.SHA256()).hex().upper()}
                             for c in policy.anchors],
        },
    }


def _from_settings(settings: Settings, role: str) -> CertificatePolicy:
    return TrustSources.from_settings(settings, role).build()


@lru_cache(maxsize=16)
def _build_policy(sources: TrustSources) -> CertificatePolicy:
    anchors = load_certificates(*sources.anchors, require_ca=True) \
        if sources.anchors else globalsign_roots()
    intermediates = tuple(cert for source in sources.intermediates
                          for cert in load_certificates(*source, require_ca=True))
    label = "client certificate" if sources.role == "client" else "signing certificate"
    identities, warnings = None, ()
    if sources.identities is not None and sources.identities[1] == ANY_IDENTITY:
        setting = sources.identities[0]
        inherited = (" (inherited: DIP_SIGNER_IDENTITIES is not set)"
                     if sources.role == "signer" and setting == "DIP_CLIENT_IDENTITIES" else "")
        warnings = (CLIENTCERT_NO_IDENTITY_RULES(
            f"{setting}={ANY_IDENTITY}{inherited}: identity rules are switched off, so any "
            f"{label} that chains to the trust anchors is accepted; for test environments "
            "only, never in production"),)
    elif sources.identities is not None:
        identities = IdentityRules.parse(_read(sources.identities[1], sources.identities[0]),
                                         sources.identities[0])
    policy = CertificatePolicy(
        anchors=anchors, intermediates=intermediates, identities=identities,
        usage=sources.usage,
        aia=AiaFetcher(sources.aia_hosts) if sources.aia_hosts is not None else None,
        expiry_warning_days=sources.expiry_warning_days,
        pinned=(anchors if sources.anchors else ()) + intermediates,
        label=label, warnings=warnings)
    for finding in policy.warnings:  # once per process and configuration: at every start
        log.warning("%s", finding.detail)
    return policy


def _read(value: str, setting: str) -> str:
    """The text of an inline-or-path value; ``config.invalid`` naming ``setting``."""
    try:
        return read_text_setting(value)
    except (OSError, UnicodeDecodeError) as exc:
        raise DipEdgeError(CONFIG_INVALID(
            f"{setting}: cannot read the file: {type(exc).__name__}")) from None


def load_certificates(setting: str, value: str, *,
                      require_ca: bool = False) -> tuple[x509.Certificate, ...]:
    """Certificates from a setting's inline PEM or PEM file; ``config.invalid`` names it."""
    text = _read(value, setting)
    try:
        certificates = tuple(x509.load_pem_x509_certificates(text.encode()))
    except ValueError:
        raise DipEdgeError(CONFIG_INVALID(
            f"{setting}: holds no readable PEM certificate")) from None
    for position, cert in enumerate(certificates, 1):
        try:
            is_ca = _is_ca(cert)
        except ValueError:
            raise DipEdgeError(CONFIG_INVALID(
                f"{setting}: certificate {position} has malformed extensions")) from None
        if require_ca and not is_ca:
            raise DipEdgeError(CONFIG_INVALID(
                f"{setting}: certificate {position} ({cert.subject.rfc4514_string()}) is not "
                "a CA certificate; list the issuing CAs, and pin the DIP's own certificate "
                "with an identity rule instead"))
    return certificates


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
