"""What the PFX checker returns: certificate facts and findings.

These types are the boundary between the checker (``shared.certs``) and its users
(the CLI, the credential service, the event handlers, the monitor).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.problems import Finding

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from shared.certs.pfx_protection import Protection


@dataclass(frozen=True)
class CertificateFacts:
    subject: str  # RFC 4514
    issuer: str
    common_name: str | None
    organization: str | None
    dns_names: tuple[str, ...]
    serial_number: str  # upper-case hex
    thumbprint_sha1: str  # upper-case hex, as the Azure portal shows it
    thumbprint_sha256: str
    spki_sha256: str  # base64, as HPKP / APIM pins
    key_type: str  # "RSA", "EC", "Ed25519", "Ed448", "DSA"
    key_size: int | None
    curve: str | None
    signature_hash: str | None  # "sha256", "sha1", ... ; None for EdDSA
    extended_key_usages: tuple[str, ...]  # names such as "clientAuth", else dotted OIDs
    key_usage: tuple[str, ...]
    is_ca: bool
    self_signed: bool
    not_before: datetime
    not_after: datetime
    days_to_expiry: int

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["not_before"] = self.not_before.isoformat()
        doc["not_after"] = self.not_after.isoformat()
        return {_camel(k): v for k, v in doc.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class PfxReport:
    """The checker's verdict on one PFX. ``valid`` means no errors (warnings allowed)."""

    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    certificate: CertificateFacts | None = None
    chain: tuple[CertificateFacts, ...] = ()
    protection: Protection | None = None  # the PKCS#12 MAC and encryption, when readable
    # The loaded objects, for the Atlas login and for re-storing the PFX; never serialised.
    leaf: x509.Certificate | None = None
    private_key: PrivateKeyTypes | None = None
    chain_certificates: tuple[x509.Certificate, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "certificate": self.certificate.to_dict() if self.certificate else None,
            "chain": [c.to_dict() for c in self.chain],
            "pkcs12": self.pkcs12(),
        }

    def pkcs12(self) -> dict[str, Any] | None:
        """The file's MAC and encryption algorithms with their iteration counts."""
        return self.protection.to_dict() if self.protection else None
