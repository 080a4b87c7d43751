"""Certificate facts, as an admin compares them with the Azure portal or GlobalSign's
console, and the password-less re-export of a checked PFX.

``describe`` never raises for a certificate that loaded: a part that cannot be parsed
(a malformed extension, an unsupported key) is left empty, and
:func:`unreadable_parts` names it so the checker can report it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PublicFormat,
    pkcs12,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.certs.report import CertificateFacts, PfxReport

_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    ExtendedKeyUsageOID.SMARTCARD_LOGON: "smartcardLogon",
    ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC: "pkInitKDC",
    ExtendedKeyUsageOID.IPSEC_IKE: "ipsecIKE",
    ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY: "certificateTransparency",
}
# The key types a PKCS#12 file can hold (all the checker accepts).
_PKCS12_KEYS = (rsa.RSAPrivateKey, dsa.DSAPrivateKey, ec.EllipticCurvePrivateKey,
                ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
_KEY_USAGE_NAMES = (
    ("digital_signature", "digitalSignature"), ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"), ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"), ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def describe(cert: x509.Certificate, *, now: datetime | None = None) -> CertificateFacts:
    now = now or datetime.now(UTC)
    public_key = _public_key(cert)
    key_type, key_size, curve = key_description(public_key)
    not_after = cert.not_valid_after_utc
    return CertificateFacts(
        subject=name_text(cert.subject),
        issuer=name_text(cert.issuer),
        common_name=_first(cert.subject, NameOID.COMMON_NAME),
        organization=_first(cert.subject, NameOID.ORGANIZATION_NAME),
        dns_names=_dns_names(cert),
        serial_number=f"{cert.serial_number:X}",
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - an identifier
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        spki_sha256=_spki_sha256(public_key),
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        signature_hash=signature_hash(cert),
        extended_key_usages=describe_ekus(extended_key_usages(cert) or ()),
        key_usage=_key_usage(cert),
        is_ca=is_ca(cert),
        self_signed=is_self_issued(cert),
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        days_to_expiry=int((not_after - now).total_seconds() // 86400),
    )


def to_passwordless_pfx(report: PfxReport) -> bytes:
    """The checked leaf, key and chain as an unencrypted PFX (for a secret store that
    encrypts at rest). Raises ``ValueError`` when the report holds no leaf and key."""
    if report.leaf is None or not isinstance(report.private_key, _PKCS12_KEYS):
        raise ValueError("the report holds no certificate and matching key to export")
    name = _first(report.leaf.subject, NameOID.COMMON_NAME)
    return pkcs12.serialize_key_and_certificates(
        name.encode() if name else None, report.private_key, report.leaf,
        list(report.chain_certificates) or None, NoEncryption(),
    )


def key_description(public_key: PublicKeyTypes | None) -> tuple[str, int | None, str | None]:
    """(type, size in bits, curve) of a public key; ("unknown", None, None) if unusable."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = public_key.curve.name
        return "EC", public_key.key_size, _CURVE_NAMES.get(name, name)
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size, None
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    return "unknown", None, None


def signature_hash(cert: x509.Certificate) -> str | None:
    """The signature's hash ("sha256", "sha1", "md5"...); None for EdDSA; the dotted
    signature algorithm OID when cryptography does not know it."""
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - UnsupportedAlgorithm: name it by OID
        return cert.signature_algorithm_oid.dotted_string
    return algorithm.name if algorithm is not None else None


def extended_key_usages(cert: x509.Certificate) -> tuple[x509.ObjectIdentifier, ...] | None:
    """The EKU OIDs, or None when the extension is absent (any usage allowed)."""
    extension = _extension(cert, x509.ExtendedKeyUsage)
    return tuple(extension) if extension is not None else None


def describe_ekus(oids: Iterable[x509.ObjectIdentifier], *,
                  in_words: bool = False) -> tuple[str, ...]:
    """EKU OIDs by their usual names ("clientAuth"), unknown ones as dotted OIDs (or, for
    a sentence, ``in_words``, as "an unrecognised usage (object identifier ...)")."""
    def name(oid: x509.ObjectIdentifier) -> str:
        if oid in _EKU_NAMES:
            return _EKU_NAMES[oid]
        return (f"an unrecognised usage (object identifier {oid.dotted_string})" if in_words
                else oid.dotted_string)

    return tuple(name(oid) for oid in oids)


def is_ca(cert: x509.Certificate) -> bool:
    extension = _extension(cert, x509.BasicConstraints)
    return bool(extension is not None and extension.ca)


def unreadable_parts(cert: x509.Certificate) -> list[str]:
    """Parts of a loaded certificate that cannot be parsed, or that a TLS peer must refuse
    to use (a critical extension it does not know), for ``cert.malformed``."""
    problems = []
    for part in ("subject", "issuer"):
        try:
            getattr(cert, part).rfc4514_string()  # names are parsed on first use
        except Exception as exc:  # noqa: BLE001 - e.g. a T.61 string with 8-bit bytes
            problems.append(f"its {part} name ({safe_reason(exc)})")
    try:
        extensions = cert.extensions
    except Exception as exc:  # noqa: BLE001 - duplicate or malformed extensions
        problems.append(f"its extensions ({safe_reason(exc)})")
        extensions = x509.Extensions([])
    unknown = [e.oid.dotted_string for e in extensions
               if e.critical and isinstance(e.value, x509.UnrecognizedExtension)]
    if unknown:
        problems.append(f"its critical extension(s) with object identifier "
                        f"{', '.join(unknown)}, which TLS peers do not know and must "
                        "therefore refuse (RFC 5280 4.2)")
    if key_description(_public_key(cert))[0] == "unknown":
        problems.append("its public key (an unsupported or malformed key)")
    return problems


def key_usage_names(cert: x509.Certificate) -> tuple[str, ...] | None:
    """The key usage bits set, or None when the extension is absent."""
    extension = _extension(cert, x509.KeyUsage)
    if extension is None:
        return None
    names = [label for attr, label in _KEY_USAGE_NAMES if getattr(extension, attr)]
    if extension.key_agreement:
        names += [label for attr, label in (("encipher_only", "encipherOnly"),
                                            ("decipher_only", "decipherOnly"))
                  if getattr(extension, attr)]
    return tuple(names)


def _key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    return key_usage_names(cert) or ()


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except Exception:  # noqa: BLE001 - malformed extensions: reported by unreadable_parts
        return None


def _public_key(cert: x509.Certificate):
    try:
        return cert.public_key()
    except Exception:  # noqa: BLE001 - unsupported or malformed key
        return None


def _spki_sha256(public_key) -> str:
    if public_key is None:
        return ""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    extension = _extension(cert, x509.SubjectAlternativeName)
    return tuple(extension.get_values_for_type(x509.DNSName)) if extension else ()


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        return value if isinstance(value, str) else value.decode("latin-1")
    return None


def name_text(name: x509.Name) -> str:
    """A name as RFC 4514 text, or ``(an unreadable name)`` for odd attribute encodings."""
    try:
        return name.rfc4514_string()
    except Exception:  # noqa: BLE001 - odd attribute encodings
        return "(an unreadable name)"


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject and issuer are the same name (a root, or a self-signed leaf)."""
    return cert.subject == cert.issuer


def eku_name(dotted: str) -> str | None:
    """The usual name of an extended key usage OID (``clientAuth``), if it has one."""
    return _EKU_NAMES.get(x509.ObjectIdentifier(dotted))


def safe_reason(exc: Exception) -> str:
    """A parse error in our words: cryptography's name the field, never key material."""
    from shared.certs.verifier_words import parse_error

    return parse_error(exc)
