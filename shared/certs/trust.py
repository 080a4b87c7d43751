"""The webhook's trust policy: is this certificate the DIP's, and may we trust it now?

(Not the PFX checker's ``PfxPolicy``, nor the Atlas account's validation policy.) Its
configuration is read by :mod:`shared.certs.trust_config`; its verdicts and their cache are
:mod:`shared.certs.verdict`. Build a :class:`TrustPolicy` once (``for_client`` /
``for_signer`` from settings, or directly), then call :meth:`~TrustPolicy.check_header` or
:meth:`~TrustPolicy.check` per request::

    policy = TrustPolicy.for_client(settings)       # config.invalid on bad settings
    verdict = policy.check_header(request.headers.get("x-arr-clientcert"))
    if not verdict.accepted:
        raise DipEdgeError(verdict.errors[0])

Checks, in order: decodable (``clientcert.malformed``), inside its validity period
(``clientcert.expired``), a chain to the trust anchors with the required extended key
usage, by ``cryptography.x509.verification`` (``clientcert.untrusted``), then the
identity rules (``clientcert.identity_mismatch``). From settings the policy fails closed:
with no identity rules configured it is not built at all (``trust_config.identities_missing``,
a 503 ``config.invalid`` the webhook answers every delivery with); ``any`` is the explicit,
logged opt-out for test environments. Verdicts for the current time are cached by the
SHA-256 of the DER (and by the header text they arrived in), in bounded LRUs whose entries
expire after a short TTL and never outlive any certificate of the chain.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from shared.certs.aia import AiaFetcher, AiaResult
from shared.certs.facts import describe, is_self_issued
from shared.certs.identity import IdentityRules, Presented
from shared.certs.verdict import PolicyVerdict, TtlCache, rejected
from shared.certs.verifier_words import in_our_words
from shared.certs.webpki import USAGE_NAMES, chain_problem, extension_policies, key_problem
from shared.problems import (
    CERT_EXPIRING_SOON,
    CLIENTCERT_EXPIRED,
    CLIENTCERT_IDENTITY_MISMATCH,
    CLIENTCERT_MALFORMED,
    CLIENTCERT_MISSING,
    CLIENTCERT_NO_IDENTITY_RULES,
    CLIENTCERT_UNTRUSTED,
    DipEdgeError,
    Finding,
)
from shared.settings import Settings

# What cryptography raises for certificate bytes it cannot make sense of.
UNPARSABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
              x509.DuplicateExtension, x509.UnsupportedGeneralNameType)

log = logging.getLogger("dip_edge.certs")
# Beginnings of verifier_words' sentences about a chain that cannot be built.
_VERIFIER_CHAIN_WORDS = ("no trust anchor", "the chain to a trust anchor would be longer")

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


class TrustPolicy:
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
        self._cache = TtlCache[bytes, PolicyVerdict](cache_size)  # by the DER's SHA-256
        # The same verdicts by the exact header text they came in: a repeated header (the
        # DIP presents the same certificate on every request) skips base64 and hashing.
        # Same text, same DER, same verdict; entries share the DER entry's deadline.
        self._by_text = TtlCache[str, PolicyVerdict](cache_size)
        self._cache_ttl = cache_ttl
        self.warnings: tuple[Finding, ...] = tuple(warnings) if warnings is not None else (
            () if identities else (CLIENTCERT_NO_IDENTITY_RULES(
                f"no identity rules are configured for the {label}: any certificate that "
                "chains to the trust anchors is accepted"),))

    # --- construction from settings --------------------------------------------------
    @classmethod
    def for_client(cls, settings: Settings) -> TrustPolicy:
        """The webhook's X-ARR-ClientCert policy (DIP_CLIENT_*); ``config.invalid`` if bad
        or if no identity rules are configured (503, see :func:`identities_missing`)."""
        from shared.certs.trust_config import policy_from_settings

        return policy_from_settings(settings, "client")

    @classmethod
    def for_signer(cls, settings: Settings) -> TrustPolicy:
        """The X-DIP-Signature-Certificate policy: DIP_SIGNER_*, each defaulting to DIP_CLIENT_*."""
        from shared.certs.trust_config import policy_from_settings

        return policy_from_settings(settings, "signer")

    # --- checks ------------------------------------------------------------------------
    def check_header(self, value: str | None, *, at: dt.datetime | None = None) -> PolicyVerdict:
        """Check an ``X-ARR-ClientCert`` value: base64 DER on one line (PEM armour tolerated)."""
        if value is None or not value.strip():
            return rejected(CLIENTCERT_MISSING(f"no {self.label} was presented"))
        try:
            return self.check_text(value, self._header_der, at=at)
        except DipEdgeError as err:
            if err.is_(CLIENTCERT_MALFORMED):  # the header itself: a verdict, not a fault
                return rejected(err.finding)
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
        loaded: x509.Certificate | None = None
        if isinstance(certificate, x509.Certificate):
            der = certificate.public_bytes(serialization.Encoding.DER)
            loaded = certificate
        else:
            der = bytes(certificate)
        if not der:
            return rejected(CLIENTCERT_MISSING(f"no {self.label} was presented")), None
        if len(der) > MAX_CERTIFICATE_BYTES:
            return rejected(CLIENTCERT_MALFORMED(f"the {self.label} is too large")), None
        key = hashlib.sha256(der).digest()
        if at is None:
            entry = self._cache.get(key, wall)
            if entry is not None:
                return entry[1], entry[0]
        now = at or dt.datetime.fromtimestamp(wall, dt.UTC)
        try:
            # cryptography parses lazily: a hostile key or extension raises on first use.
            if loaded is None:
                loaded = x509.load_der_x509_certificate(der)
            verdict, cacheable = self._evaluate(loaded, now)
        except UNPARSABLE:
            return rejected(CLIENTCERT_MALFORMED(
                f"the {self.label} is not a readable DER X.509 certificate")), None
        if at is not None or not cacheable:
            return verdict, None
        deadline = self._deadline(verdict, loaded, wall)
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
            return rejected(CLIENTCERT_MALFORMED(
                f"the {self.label} could not be read: {type(exc).__name__}")), True
        now = now.replace(microsecond=0)  # validity has one-second granularity (RFC 5280)
        if now < cert.not_valid_before_utc:
            return rejected(CLIENTCERT_EXPIRED(
                f"the {self.label} is not valid until {cert.not_valid_before_utc.isoformat()}"),
                facts), True
        if now > cert.not_valid_after_utc:
            return rejected(CLIENTCERT_EXPIRED(
                f"the {self.label} expired on {cert.not_valid_after_utc.isoformat()}"),
                facts), True
        problem = key_problem(cert) or (
            "its serial number is not a positive integer" if cert.serial_number <= 0 else None)
        if problem:
            return rejected(CLIENTCERT_UNTRUSTED(f"the {self.label} is not acceptable: {problem}"),
                             facts), True
        chain, failure, cacheable = self._build_chain(cert, now)
        if chain is None:
            return rejected(CLIENTCERT_UNTRUSTED(failure), facts), cacheable
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
            # (usage, reason); usage None: a reason about the chain whatever the usage
            reasons: list[tuple[x509.ObjectIdentifier | None, str]] = []
            for usage, policies in self._extension_policies.items():
                builder = PolicyBuilder().store(self._store).time(now)
                if self._max_chain_depth is not None:
                    builder = builder.max_chain_depth(self._max_chain_depth)
                builder = builder.extension_policies(ca_policy=policies[0],
                                                     ee_policy=policies[1])
                try:
                    verified = builder.build_client_verifier().verify(leaf, intermediates)
                except VerificationError as exc:
                    reasons.append((usage, in_our_words(str(exc), leaf)))
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
        # The verifier's own reasons for these ("no issuer verifies", or "max depth" from
        # looping on a root offered as an intermediate) say less than ours.
        root = None if leaf in self.anchors else self._untrusted_root(leaf, intermediates)
        ours = None
        if root is leaf:
            ours = (f"it is self-signed ('{leaf.subject.rfc4514_string()}'), not issued by a "
                    "trust anchor")
        elif root is not None:
            ours = (f"its chain ends at the self-signed '{root.subject.rfc4514_string()}', "
                    "which is not a trust anchor (a root belongs among the trust anchors, "
                    "not the intermediates)")
        elif leaf.issuer not in {c.subject for c in (*self.anchors, *intermediates)}:
            ours = (f"its issuer '{leaf.issuer.rfc4514_string()}' is neither a trust anchor "
                    "nor a known intermediate")
        if ours:
            reasons = [(u, r) for u, r in reasons if not r.startswith(_VERIFIER_CHAIN_WORDS)]
            reasons.insert(0, (None, ours))
        several = len({u for u, _ in reasons if u is not None}) > 1
        detail = "; ".join(dict.fromkeys(
            (f"as a {USAGE_NAMES[u]} certificate, " if several and u is not None else "") + r
            for u, r in reasons))
        if notes:
            detail += "; " + "; ".join(notes)
        return None, f"the {self.label} does not chain to a trust anchor: {detail}", cacheable

    def _untrusted_root(self, leaf: x509.Certificate,
                        intermediates: Sequence[x509.Certificate]) -> x509.Certificate | None:
        """The self-signed certificate, not an anchor, where the walk up from the leaf (by
        issuer name, through ``intermediates``) ends, the leaf itself included; None when
        the walk reaches an anchor's name or a missing issuer."""
        anchor_subjects = {a.subject for a in self.anchors}
        by_subject = {c.subject: c for c in intermediates}
        node, seen = leaf, set()
        while node.issuer not in anchor_subjects and node.subject not in seen:
            if is_self_issued(node):
                return node
            seen.add(node.subject)
            parent = by_subject.get(node.issuer)
            if parent is None:
                return None
            node = parent
        return None

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
            if parent.subject in seen or is_self_issued(parent):
                return None
            seen.add(parent.subject)
            node = parent
        return None
