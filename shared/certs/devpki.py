"""A small certificate factory: local CAs, server and client certificates.

Used by ``dip-edge dev-certs`` and ``dip-edge serve`` (to try mTLS on one machine) and by
the tests (to imitate GlobalSign's hierarchy). Certificates follow RFC 5280 closely
enough for ``cryptography.x509.verification``: CAs carry basic constraints, key usage
and a subject key identifier; leaves carry a subjectAltName and an authority key
identifier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# What the dev PKI signs with (any key cryptography can sign a certificate and a PFX with).
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def new_key(kind: str = "rsa2048") -> SigningKey:
    """``rsa<bits>``, ``p256``, ``p384``, ``p521``, ``secp256k1`` or ``ed25519``."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves: dict[str, type[ec.EllipticCurve]] = {
        "p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1,
        "secp256k1": ec.SECP256K1}
    if kind in curves:
        return ec.generate_private_key(curves[kind]())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


@dataclass
class Issued:
    certificate: x509.Certificate
    private_key: SigningKey
    issuer: Issued | None = field(default=None, repr=False)

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain(self) -> list[x509.Certificate]:
        """The issuing CAs above this certificate, nearest first (root included)."""
        out, node = [], self.issuer
        while node is not None:
            out.append(node.certificate)
            node = node.issuer
        return out

    def pfx(self, password: bytes | None = None, *, with_chain: bool = True,
            friendly_name: bytes | None = b"dip-edge") -> bytes:
        """PKCS#12 with AES-256 encryption (or none without a password)."""
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        cas = [c for c in self.chain() if c.subject != c.issuer] if with_chain else None
        return pkcs12.serialize_key_and_certificates(
            friendly_name, self.private_key, self.certificate, cas or None, encryption
        )


def _name(common_name: str, organization: str | None, country: str | None) -> x509.Name:
    attrs = []
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _sign_hash(key: SigningKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    organization: str | None = None,
    country: str | None = None,
    key: SigningKey | None = None,
    ca: bool = False,
    path_length: int | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    ekus: Iterable[x509.ObjectIdentifier] | None = (CLIENT_AUTH,),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: int = 365,
    serial_number: int | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """Issue a certificate; without ``issuer`` it is self-signed.

    ``ekus=None`` leaves the extended key usage extension out (which allows any usage).
    """
    key = key or new_key("rsa2048")
    now = dt.datetime.now(dt.UTC)
    not_before = not_before or now - dt.timedelta(minutes=5)
    not_after = not_after or not_before + dt.timedelta(days=days)
    subject = _name(common_name, organization, country)
    signer_key = issuer.private_key if issuer else key
    issuer_name = issuer.name if issuer else subject
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                       critical=True)
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=True, crl_sign=True, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ip_address(a)) for a in ip_addresses]
        if not sans:
            sans = [x509.DNSName(common_name if "." in common_name else f"{common_name}.invalid")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if ekus is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    for extension, critical in extra_extensions:
        builder = builder.add_extension(extension, critical=critical)
    algorithm = hash_algorithm if hash_algorithm is not None else _sign_hash(signer_key)
    # SHA-1 and MD5 (weak-signature fixtures) sign, though cryptography's hints leave them out.
    certificate = builder.sign(signer_key, algorithm)  # type: ignore[arg-type]
    return Issued(certificate, key, issuer)


@dataclass
class DevPki:
    """A root and intermediate with a server and a client certificate, for local mTLS."""

    root: Issued
    intermediate: Issued
    server: Issued
    client: Issued
    signer: Issued


def make_dev_pki(hostnames: Sequence[str] = ("localhost",),
                 ip_addresses: Sequence[str] = ("127.0.0.1", "::1")) -> DevPki:
    root = issue("dip-edge Dev Root CA", organization="dip-edge dev", ca=True, ekus=None,
                 days=3650, key=new_key("p256"))
    intermediate = issue("dip-edge Dev Issuing CA", organization="dip-edge dev", issuer=root,
                         ca=True, path_length=0, ekus=None, days=1825, key=new_key("p256"))
    server = issue(hostnames[0], issuer=intermediate, dns_names=hostnames,
                   ip_addresses=ip_addresses, ekus=(SERVER_AUTH,), days=365,
                   key=new_key("p256"))
    client = issue("dip-edge dev DIP client", organization="dip-edge dev",
                   issuer=intermediate, dns_names=("dip-client.dev.invalid",),
                   ekus=(CLIENT_AUTH,), days=365)
    signer = issue("dip-edge dev DIP signer", organization="dip-edge dev",
                   issuer=intermediate, dns_names=("dip-signer.dev.invalid",),
                   ekus=(CLIENT_AUTH,), days=365)
    return DevPki(root, intermediate, server, client, signer)
