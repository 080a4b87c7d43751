"""Is the PFX's certificate GlobalSign's (or a configured issuer's)?

The CA that issues Atlas API access certificates is not publicly documented, so this is
recognition, not path validation to a public root (the online Atlas login is the final
proof). The walk goes up from the leaf through the chain certificates the PFX carries,
verifying each signature, and stops at the first of:

- an issuer that is a trust anchor (a bundled GlobalSign root or a configured issuer)
  whose key verifies the signature: trusted;
- a self-signed certificate: trusted only if it is itself an anchor;
- the end of the carried chain: trusted if an issuer on the verified path has GlobalSign's
  organisation (``GlobalSign nv-sa``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from shared.certs.facts import is_self_issued, name_text
from shared.problems import CERT_UNTRUSTED_ISSUER, Finding

GLOBALSIGN_ORGANIZATION = "GlobalSign nv-sa"
_MAX_PATH = 8
_EDDSA = frozenset({SignatureAlgorithmOID.ED25519, SignatureAlgorithmOID.ED448})


def untrusted_issuer(leaf: x509.Certificate, carried: Sequence[x509.Certificate],
                     anchors: Sequence[x509.Certificate]) -> Finding | None:
    """The ``cert.untrusted_issuer`` finding, or None when the issuer is recognised."""
    if is_self_issued(leaf):  # even if configured: Atlas never issues a self-signed one
        return CERT_UNTRUSTED_ISSUER(
            f"The certificate is self-signed ({_name(leaf.subject)}): the DIP accepts only "
            "GlobalSign Atlas certificates, so a self-signed one is refused.")
    current, seen = leaf, {leaf}
    for _ in range(_MAX_PATH):
        for anchor in (a for a in anchors if a.subject == current.issuer):
            if _signed_by(current, anchor):
                return None
        parents = [c for c in carried if c.subject == current.issuer and c not in seen]
        if not parents:
            named_anchor = any(a.subject == current.issuer for a in anchors)
            if named_anchor:
                return CERT_UNTRUSTED_ISSUER(
                    f"{_name(current.subject)} names the trusted issuer "
                    f"{_name(current.issuer)}, but its signature does not verify with that "
                    "issuer's key: it was not issued by it.")
            # Every link up to here verified; a GlobalSign issuing CA anywhere on it counts
            # (real chains end at roots whose organisation is plain "GlobalSign").
            if any(_organization(c.issuer) == GLOBALSIGN_ORGANIZATION for c in seen):
                return None
            who = ("The certificate" if current is leaf
                   else f"The PFX's chain certificate {_name(current.subject)}")
            return CERT_UNTRUSTED_ISSUER(
                f"{who} is issued by {_name(current.issuer)}, and no certificate of that "
                "name is in the PFX or among the trusted issuers: if it is an intermediate "
                "CA, the file lacks it, so the chain cannot be followed (export the PFX "
                "with its whole chain, e.g. `openssl pkcs12 -export -in cert.pem -inkey "
                "key.pem -certfile chain.pem`). As it stands the issuer is not a GlobalSign "
                f"CA (organisation '{GLOBALSIGN_ORGANIZATION}') nor a configured trusted "
                "issuer (--trust / PFX_TRUSTED_ISSUERS).")
        parent = next((p for p in parents if _signed_by(current, p)), None)
        if parent is None and not _verifiable(current):
            return CERT_UNTRUSTED_ISSUER(
                f"The signature on {_name(current.subject)} cannot be checked: it uses a "
                "signature algorithm that cannot be verified here (object identifier "
                f"{current.signature_algorithm_oid.dotted_string}).")
        if parent is None:
            return CERT_UNTRUSTED_ISSUER(
                f"The PFX's chain certificate {_name(parents[0].subject)} did not sign "
                f"{_name(current.subject)} (the signature does not verify): the chain in the "
                "file is not this certificate's.")
        if is_self_issued(parent):
            if parent in anchors:
                return None
            return CERT_UNTRUSTED_ISSUER(
                f"The PFX's chain ends at the self-signed root {_name(parent.subject)}, "
                "which is neither a GlobalSign root nor a configured trusted issuer.")
        current = parent
        seen.add(parent)
    return CERT_UNTRUSTED_ISSUER("The PFX's chain is implausibly long; it was not followed.")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key made ``cert``'s signature, with the algorithm the signature
    uses: ``cryptography`` refuses SHA-1 and MD5 signatures ("unsupported algorithm"),
    which are then checked with the issuer's public key directly (a weak hash is
    ``cert.weak_signature``'s business, not a reason to doubt who signed)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        return _verify_directly(cert, issuer)
    except Exception:  # noqa: BLE001 - any failure means "not issued by this one"
        return False
    return True


def _verify_directly(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        algorithm = cert.signature_hash_algorithm
        key = issuer.public_key()
        if algorithm is None or cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
            return False  # EdDSA and PSS: cryptography verifies those itself
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _verifiable(cert: x509.Certificate) -> bool:
    """False when ``cert`` is signed with an algorithm nothing here can verify: one whose
    hash ``cryptography`` does not know (EdDSA signatures have none and are verifiable)."""
    try:
        hash_algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    return hash_algorithm is not None or cert.signature_algorithm_oid in _EDDSA


def _organization(name: x509.Name) -> str | None:
    for attribute in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME):
        return str(attribute.value)
    return None


def _name(name: x509.Name) -> str:
    text = name_text(name)
    return text if text.startswith("(") else f"'{text}'"
