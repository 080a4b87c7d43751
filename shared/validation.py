"""The one credential-validation use case: check the PFX, then prove the account to Atlas.

The credential API, the events queue, the expiry monitor and ``dip-edge check-pfx`` each
check the PFX (``check_pfx``, whose password handling they own) and then call
:func:`validate_credentials`, which proves the API key, API secret and PFX together
against GlobalSign Atlas only when every check passed. An :class:`~shared.atlas.account.
Account` is made only from a PFX that passed (:func:`passed_account`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.atlas.account import Account
from shared.problems import Finding

if TYPE_CHECKING:
    from shared.atlas.client import AtlasConnection
    from shared.atlas.proof import AtlasProof
    from shared.certs.report import CertificateFacts, PfxReport


class NotPassed(ValueError):
    """An account was asked of a PFX that did not pass the checks (a programming error)."""


def passed_account(report: PfxReport, api_key: str, api_secret: str) -> Account:
    """The Atlas account of a PFX that passed the checks; :class:`NotPassed` otherwise."""
    if not report.valid or report.leaf is None or report.private_key is None:
        raise NotPassed("only a PFX that passed the checks makes an Atlas account")
    return Account(api_key, api_secret, report.leaf, report.private_key,
                   tuple(report.chain_certificates))


@dataclass(frozen=True)
class Passed:
    """A credential set that passed every check and was proven: what may be stored."""

    account: Account = field(repr=False)
    report: PfxReport
    certificate: CertificateFacts


@dataclass(frozen=True)
class CredentialVerdict:
    """What the checks and (when they passed) GlobalSign said about one credential set."""

    report: PfxReport | None  # None: the PFX could not even be read from the submission
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    proof: AtlasProof | None  # None: Atlas was not asked (a check failed, or no API key)
    passed: Passed | None = None  # set when proven

    @property
    def valid(self) -> bool:
        return not self.errors

    def details(self) -> dict[str, Any]:
        """The certificate and GlobalSign parts of an answer (no secret in either)."""
        report = self.report
        return {
            "certificate": report.certificate.to_dict() if report and report.certificate
            else None,
            "chain": [c.to_dict() for c in report.chain] if report else [],
            "pkcs12": report.pkcs12() if report else None,
            "globalsign": self.proof.to_dict() if self.proof else None,
        }


def validate_credentials(report: PfxReport | None, api_key: str | None, api_secret: str | None,
                         connection: AtlasConnection | Callable[[], AtlasConnection], *,
                         findings: Sequence[Finding] = ()) -> CredentialVerdict:
    """Prove the PFX of ``report`` with the API key and secret, if everything passed.

    ``findings`` are errors found beside the PFX's (a missing API key, an unreadable
    submission); any error, or no key and secret, and Atlas is not asked. ``connection`` may
    be a function, called only when Atlas is asked. Remote faults are findings of the
    proof; only a bad ``ATLAS_*`` setting raises (``config.invalid``).
    """
    errors = (*findings, *(report.errors if report else ()))
    warnings = report.warnings if report else ()
    if report is None or errors or not api_key or not api_secret:
        return CredentialVerdict(report, errors, warnings, None)
    from shared.atlas.proof import prove_credentials  # httpx: loaded only to ask Atlas

    account = passed_account(report, api_key, api_secret)
    proof = prove_credentials(account, connection() if callable(connection) else connection)
    passed = (Passed(account, report, report.certificate)
              if proof.proven and report.certificate is not None else None)
    return CredentialVerdict(report, proof.errors, (*warnings, *proof.warnings), proof, passed)
