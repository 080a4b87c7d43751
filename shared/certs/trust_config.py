"""The webhook's trust configuration: which anchors, intermediates, identity rules, usage
and AIA hosts a :class:`~shared.certs.trust.TrustPolicy` has, read from the settings
(DIP_CLIENT_*, DIP_SIGNER_* falling back to the client's, AIA_*) or from the CLI's options;
the one policy built per distinct configuration; and the fail-closed answer when no
identity rules are configured."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from shared.certs.aia import AiaFetcher
from shared.certs.facts import is_ca
from shared.certs.identity import IdentityRules
from shared.certs.roots import globalsign_roots
from shared.certs.trust import TrustPolicy
from shared.problems import CLIENTCERT_NO_IDENTITY_RULES, CONFIG_INVALID, DipEdgeError, Finding
from shared.settings import Setting, Settings, read_text_setting

log = logging.getLogger("dip_edge.certs")

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
        chosen: tuple[Setting[str | None], ...] = _ROLE_SETTINGS["client"]
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

    def build(self, *, inspect: bool = False) -> TrustPolicy:
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


def trust_summary(sources: TrustSources, policy: TrustPolicy) -> dict[str, Any]:
    """Which anchors and identity rules are in force for one role (public facts only)."""
    if sources.identities is None:
        identities: dict[str, Any] = {"mode": "missing", "settings": list(sources.missing)}
    elif sources.identities[1] == ANY_IDENTITY:
        identities = {"mode": "any", "setting": sources.identities[0]}
    else:
        rules = policy.identities.rules if policy.identities is not None else ()
        identities = {"mode": "rules", "setting": sources.identities[0], "rules": len(rules)}
    return {
        "identities": identities,
        "anchors": {
            "source": sources.anchors_source,
            "certificates": [{"subject": c.subject.rfc4514_string(),
                              "sha256": c.fingerprint(hashes.SHA256()).hex().upper()}
                             for c in policy.anchors],
        },
    }


def policy_from_settings(settings: Settings, role: str) -> TrustPolicy:
    """The policy of ``role`` ("client" or "signer"), one per distinct configuration."""
    return TrustSources.from_settings(settings, role).build()


@lru_cache(maxsize=16)
def _build_policy(sources: TrustSources) -> TrustPolicy:
    anchors = load_certificates(*sources.anchors, require_ca=True) \
        if sources.anchors else globalsign_roots()
    intermediates = tuple(cert for source in sources.intermediates
                          for cert in load_certificates(*source, require_ca=True))
    label = "client certificate" if sources.role == "client" else "signing certificate"
    identities: IdentityRules | None = None
    warnings: tuple[Finding, ...] = ()
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
    policy = TrustPolicy(
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
            cert.extensions  # noqa: B018 - parsed on first use: malformed ones raise here
        except ValueError:
            raise DipEdgeError(CONFIG_INVALID(
                f"{setting}: certificate {position} has malformed extensions")) from None
        if require_ca and not is_ca(cert):
            raise DipEdgeError(CONFIG_INVALID(
                f"{setting}: certificate {position} ({cert.subject.rfc4514_string()}) is not "
                "a CA certificate; list the issuing CAs, and pin the DIP's own certificate "
                "with an identity rule instead"))
    return certificates
