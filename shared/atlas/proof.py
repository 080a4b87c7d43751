"""Prove an API key, API secret and client certificate together against Atlas.

``prove_credentials`` logs in over mutual TLS and reads the validation policy (the same
probe GlobalSign's partners use as a connectivity test); both must succeed for the
credentials to count as proven. The issuance quota and the trust chain are read for the
report; if those fail after a good login the proof stands and the failure is a warning.
Remote faults never raise: they are findings in the returned :class:`AtlasProof`; only a
bad ``ATLAS_CA_BUNDLE`` raises ``DipEdgeError(config.invalid)``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from shared.atlas.account import Account
from shared.atlas.client import AtlasClient, AtlasConnection, AtlasError
from shared.atlas.quotas import fetch_issuance_quota
from shared.atlas.trustchain import fetch_trust_chain
from shared.atlas.validation_policy import fetch_validation_policy
from shared.problems import GS_MTLS_REJECTED, GS_UNAVAILABLE, Finding

__all__ = ["Account", "AtlasConnection", "AtlasProof", "prove_credentials"]


@dataclass(frozen=True)
class AtlasProof:
    errors: tuple[Finding, ...]  # globalsign.* findings; empty = proven
    warnings: tuple[Finding, ...]
    account: dict | None  # JSON-ready: validationPolicy, issuanceQuota, trustChain subjects
    retry_after: int | None = None  # set when globalsign.unavailable

    @property
    def proven(self) -> bool:
        return not self.errors

    @property
    def unavailable(self) -> bool:
        return any(f.is_(GS_UNAVAILABLE) for f in self.errors)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "proven": self.proven,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "account": self.account,
        }
        if self.retry_after is not None:
            doc["retryAfter"] = self.retry_after
        return doc


def prove_credentials(account: Account, connection: AtlasConnection) -> AtlasProof:
    """Log in as the account and summarise what Atlas says about it."""
    try:
        client = AtlasClient(connection, api_key=account.api_key,
                             api_secret=account.api_secret, certificate=account.certificate,
                             private_key=account.private_key, chain=account.chain)
    except ssl.SSLError as exc:
        unusable = GS_MTLS_REJECTED(
            f"The PFX's certificate and key cannot be used for TLS ({exc.reason}).")
        return AtlasProof((unusable,), (), None)
    with client:
        try:
            client.login()
            policy = fetch_validation_policy(client)
        except AtlasError as err:
            return AtlasProof((err.finding,), (), None, err.retry_after)
        warnings: list[Finding] = []
        summary: dict[str, Any] = {"validationPolicy": policy.to_dict(),
                                   "issuanceQuota": None, "trustChain": []}
        try:
            summary["issuanceQuota"] = fetch_issuance_quota(client)
        except AtlasError as err:
            warnings.append(err.finding)
        try:
            summary["trustChain"] = [c.subject.rfc4514_string()
                                     for c in fetch_trust_chain(client)]
        except AtlasError as err:
            warnings.append(err.finding)
    return AtlasProof((), tuple(warnings), summary)
