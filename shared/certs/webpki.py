"""The certificate profile the webhook enforces on top of ``cryptography``'s verifier.

``cryptography.x509.verification`` implements most of RFC 5280 and the CA/Browser Forum
Baseline Requirements, but deliberately leaves some rules out (pedantic ones, or ones it
cannot decide without knowing which certificate is the root). The DIP's certificates
come from GlobalSign, a public CA that follows them all, so the webhook can afford to be
strict; the x509-limbo suite (``tests/test_x509_limbo.py``) holds us to it.

* :func:`extension_policies` — the Web PKI extension policies for one extended key
  usage (``build_client_verifier`` hard-wires clientAuth, and ``build_server_verifier``
  needs a peer name), plus: an EE must carry an EKU without anyExtendedKeyUsage; a root
  must carry none; every CA a subject key identifier; every CA but a self-signed root an
  authority key identifier, holding a key identifier only (a root's equal to its own SKI).
  Unlike the Web PKI default, an EE needs no subjectAltName: a client certificate is
  identified by its subject and the identity rules, not by a host name, and client
  certificates without one are common (``openssl verify -purpose sslclient`` accepts them);
  without a subjectAltName the subject must not be empty, and with an empty subject the
  subjectAltName must be critical (RFC 5280 4.2.1.6).
* :func:`key_problem` / :func:`chain_problem` — what extension policies cannot express:
  permitted key types and sizes on every certificate (the verifier checks only the keys
  it verifies signatures with, never the leaf's), positive serial numbers, and critical
  policy constraints.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy

from shared.certs.facts import is_self_issued

ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
USAGE_NAMES = {ExtendedKeyUsageOID.CLIENT_AUTH: "TLS client",
               ExtendedKeyUsageOID.SERVER_AUTH: "TLS server"}
MIN_RSA_BITS = 2048
PERMITTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def extension_policies(usage: x509.ObjectIdentifier) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, EE policy) for chains used for ``usage``."""
    name = USAGE_NAMES.get(usage, usage.dotted_string)

    def ee_eku(_policy, _cert, eku: x509.ExtendedKeyUsage) -> None:
        if ANY_EKU in eku:
            raise ValueError("an end-entity EKU must not contain anyExtendedKeyUsage")
        if usage not in eku:
            raise ValueError(f"its extended key usage ({_usages(eku)}) does not allow {name}")

    def ee_san(_policy, cert: x509.Certificate,
               san: x509.SubjectAlternativeName | None) -> None:
        if len(cert.subject):
            return
        if san is None:
            raise ValueError("it has neither a subject name nor a subjectAltName")
        if not cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical:
            raise ValueError("its subject is empty, so its subjectAltName must be critical")

    def ca_eku(_policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is None:
            return
        if is_self_issued(cert):
            raise ValueError("a root certificate must not carry an extended key usage")
        if usage not in eku and ANY_EKU not in eku:
            raise ValueError(f"the CA '{cert.subject.rfc4514_string()}' has an extended key "
                             f"usage ({_usages(eku)}) that does not allow {name}")

    def ca_aki(_policy, cert: x509.Certificate, aki: x509.AuthorityKeyIdentifier | None) -> None:
        if aki is None:
            if not is_self_issued(cert):  # RFC 5280 4.2.1.1: only a self-signed root may omit it
                raise ValueError("a CA certificate that is not self-signed lacks an authority "
                                 "key identifier")
            return
        if aki.key_identifier is None:
            raise ValueError("the authority key identifier has no key identifier")
        if aki.authority_cert_issuer is not None or aki.authority_cert_serial_number is not None:
            raise ValueError("the authority key identifier must hold the key identifier only")
        if is_self_issued(cert):
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            except x509.ExtensionNotFound:
                raise ValueError("a CA certificate lacks a subject key identifier") from None
            if ski.digest != aki.key_identifier:
                raise ValueError("a root's authority key identifier differs from its own")

    ca = (ExtensionPolicy.webpki_defaults_ca()
          .require_present(x509.SubjectKeyIdentifier, Criticality.NON_CRITICAL, None)
          .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, ca_aki)
          .may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, ca_eku))
    ee = (ExtensionPolicy.webpki_defaults_ee()
          .require_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, ee_eku)
          .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, ee_san))
    return ca, ee


def _usages(eku: x509.ExtendedKeyUsage) -> str:
    from shared.certs.facts import describe_ekus

    return ", ".join(describe_ekus(eku, in_words=True)) or "none"


def key_problem(cert: x509.Certificate) -> str | None:
    """Why a certificate's public key is not permitted (RSA >= 2048 in whole bytes, or
    ECDSA on P-256/P-384/P-521), or ``None``."""
    try:
        key = cert.public_key()
    except ValueError:
        return "its public key cannot be read"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"its RSA key has {key.key_size} bits (at least {MIN_RSA_BITS} are required)"
        if key.key_size % 8:
            return f"its RSA modulus ({key.key_size} bits) is not a whole number of bytes"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, PERMITTED_CURVES):
            return None
        return f"its elliptic curve {key.curve.name} is not permitted"
    from shared.certs.facts import key_description

    return f"its key type ({key_description(key)[0]}) is not permitted"


def chain_problem(chain: Sequence[x509.Certificate],
                  anchors: Collection[x509.Certificate]) -> str | None:
    """The first profile violation in a verified chain (leaf first), or ``None``."""
    for position, cert in enumerate(chain):
        role = "the certificate" if position == 0 else f"CA '{cert.subject.rfc4514_string()}'"
        problem = key_problem(cert)
        if problem:
            return f"{role}: {problem}"
        if cert not in anchors and cert.serial_number <= 0:
            return f"{role}: its serial number is not a positive integer"
        try:
            constraints = cert.extensions.get_extension_for_class(x509.PolicyConstraints)
        except x509.ExtensionNotFound:
            continue
        if not constraints.critical:
            return f"{role}: its policy constraints extension is not marked critical"
    return None
