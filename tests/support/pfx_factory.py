"""Test PFX files, generated at test time from ``shared.certs.devpki``.

:class:`PfxFactory` imitates GlobalSign's naming: its "good" issuing CA has the
organisation ``GlobalSign nv-sa`` (not one of the bundled real roots, so it is recognised
by name, as the checker does for Atlas's undocumented issuer). A separate private CA
("Acme Test Root") stands for an issuer that is trusted only with ``--trust``.

Two things ``cryptography`` 50 refuses are done differently: SHA-1 signatures come from
the ``openssl`` command, and a key that matches none of the certificates is written as a
key bag plus unrelated certificates.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PBES
from cryptography.x509.oid import NameOID

from shared.certs.devpki import CLIENT_AUTH, SERVER_AUTH, Issued, issue, new_key

PASSWORD = b"Pfx-Factory-Secret-7d3f"  # distinctive: tests search output for it


@dataclass(frozen=True)
class Pfx:
    """One test file: its bytes, the password that opens it, and what it holds."""

    data: bytes
    password: bytes | None
    issued: Issued | None = None


def encryption(password: bytes | None, *, legacy: bool = False):
    """AES-256 (cryptography's best), legacy 3DES/SHA-1 as old Windows writes, or none."""
    if password is None:
        return serialization.NoEncryption()
    if legacy:
        return (serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(PBES.PBESv1SHA1And3KeyTripleDESCBC)
                .hmac_hash(hashes.SHA1())
                .build(password))
    return serialization.BestAvailableEncryption(password)


def to_pfx(issued: Issued, password: bytes | None = PASSWORD, *, chain: bool = True,
           legacy: bool = False) -> Pfx:
    cas = [c for c in issued.chain() if c.subject != c.issuer] if chain else []
    data = pkcs12.serialize_key_and_certificates(
        b"dip-edge test", issued.private_key, issued.certificate, cas or None,
        encryption(password, legacy=legacy))
    return Pfx(data, password, issued)


class PfxFactory:
    """The CAs, built once; leaves and PFX files made on demand."""

    def __init__(self) -> None:
        self.root = issue("Test GlobalSign Root CA - R3", organization="GlobalSign nv-sa",
                          country="BE", ca=True, ekus=None, days=3650, key=new_key("p256"))
        self.issuing = issue("Test GlobalSign Atlas R3 Client CA 2026", issuer=self.root,
                             organization="GlobalSign nv-sa", country="BE", ca=True,
                             path_length=0, ekus=None, days=1825, key=new_key("p256"))
        self.private_root = issue("Acme Test Root", organization="Acme Energy Test",
                                  ca=True, ekus=None, days=3650, key=new_key("p256"))
        self.private_issuing = issue("Acme Test Issuing CA", issuer=self.private_root,
                                     organization="Acme Energy Test", ca=True, path_length=0,
                                     ekus=None, days=1825, key=new_key("p256"))

    def leaf(self, common_name: str = "acme-atlas-access", *, issuer: Issued | None = None,
             key_kind: str = "rsa2048", **kwargs) -> Issued:
        kwargs.setdefault("organization", "Acme Energy Ltd")
        return issue(common_name, issuer=issuer or self.issuing, key=new_key(key_kind),
                     **kwargs)

    @cached_property
    def good(self) -> Issued:
        return self.leaf("acme-atlas-access")

    def at(self, days: float) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)

    # -- one method per kind of file the tests need --------------------------------------

    def kinds(self) -> dict[str, Pfx]:
        """Every valid-or-not fixture by name (each built on first use, then cached)."""
        return {name: getattr(self, name) for name in KINDS}

    @cached_property
    def rsa_aes(self) -> Pfx:
        return to_pfx(self.good)

    @cached_property
    def rsa_legacy(self) -> Pfx:
        return to_pfx(self.good, legacy=True)

    @cached_property
    def rsa_passwordless(self) -> Pfx:
        return to_pfx(self.good, None)

    @cached_property
    def rsa_no_chain(self) -> Pfx:
        return to_pfx(self.good, chain=False)

    @cached_property
    def ec_p256(self) -> Pfx:
        return to_pfx(self.leaf("acme-ec", key_kind="p256"))

    @cached_property
    def ec_p384_legacy(self) -> Pfx:
        return to_pfx(self.leaf("acme-ec384", key_kind="p384"), legacy=True)

    @cached_property
    def expiring_soon(self) -> Pfx:
        return to_pfx(self.leaf("acme-soon", not_before=self.at(-355), not_after=self.at(10)))

    @cached_property
    def no_eku(self) -> Pfx:  # no EKU extension: any usage, client auth included
        return to_pfx(self.leaf("acme-any-usage", ekus=None))

    @cached_property
    def trusted_private(self) -> Pfx:  # valid only with --trust private_root
        return to_pfx(self.leaf("acme-private", issuer=self.private_issuing))

    @cached_property
    def expired(self) -> Pfx:
        return to_pfx(self.leaf("acme-expired", not_before=self.at(-400), not_after=self.at(-35)))

    @cached_property
    def not_yet_valid(self) -> Pfx:
        return to_pfx(self.leaf("acme-future", not_before=self.at(10), days=365))

    @cached_property
    def server_only(self) -> Pfx:
        return to_pfx(self.leaf("acme-server", ekus=(SERVER_AUTH,)))

    @cached_property
    def rsa1024(self) -> Pfx:
        return to_pfx(self.leaf("acme-weak", key_kind="rsa1024"))

    @cached_property
    def secp256k1(self) -> Pfx:
        return to_pfx(self.leaf("acme-k1", key_kind="secp256k1"))

    @cached_property
    def sha1_signed(self) -> Pfx:
        return to_pfx(sha1_leaf(self.issuing, "acme-sha1"))

    @cached_property
    def ca_certificate(self) -> Pfx:
        return to_pfx(issue("Acme Rogue CA", issuer=self.issuing, ca=True, path_length=0,
                            ekus=None, key=new_key("p256")))

    @cached_property
    def self_signed(self) -> Pfx:
        return to_pfx(issue("acme-self-signed", organization="GlobalSign nv-sa",
                            ekus=(CLIENT_AUTH,)))

    @cached_property
    def wrong_chain(self) -> Pfx:
        """The intermediate carried is a look-alike: same name, another key."""
        impostor = issue("Test GlobalSign Atlas R3 Client CA 2026", issuer=self.private_root,
                         organization="GlobalSign nv-sa", country="BE", ca=True,
                         path_length=0, ekus=None, key=new_key("p256"))
        data = pkcs12.serialize_key_and_certificates(
            b"x", self.good.private_key, self.good.certificate, [impostor.certificate],
            encryption(PASSWORD))
        return Pfx(data, PASSWORD, self.good)

    @cached_property
    def key_mismatch(self) -> Pfx:
        """A key bag plus certificates that belong to another key."""
        data = pkcs12.serialize_key_and_certificates(
            b"x", new_key("rsa2048"), None, [self.good.certificate, self.issuing.certificate],
            encryption(PASSWORD))
        return Pfx(data, PASSWORD, self.good)

    @cached_property
    def key_only(self) -> Pfx:
        data = pkcs12.serialize_key_and_certificates(b"x", self.good.private_key, None, None,
                                                     encryption(PASSWORD))
        return Pfx(data, PASSWORD)

    @cached_property
    def certificate_only(self) -> Pfx:
        data = pkcs12.serialize_key_and_certificates(
            b"x", None, None, [self.good.certificate, self.issuing.certificate],
            encryption(PASSWORD))
        return Pfx(data, PASSWORD, self.good)

    @cached_property
    def several_keys(self) -> Pfx:
        """Two key-and-certificate pairs in one PFX (cryptography writes one key, so the
        authenticated safes of two files are joined and the MAC is computed again)."""
        other = self.leaf("acme-second-account")
        return Pfx(join_pfx(to_pfx(self.good, chain=False).data,
                            to_pfx(other, chain=False).data, PASSWORD), PASSWORD, self.good)

    @cached_property
    def malformed_extension(self) -> Pfx:
        """A certificate policies extension whose bytes are not a policy list."""
        junk = x509.UnrecognizedExtension(x509.oid.ExtensionOID.CERTIFICATE_POLICIES,
                                          b"\x02\x01\x05")
        return to_pfx(self.leaf("acme-odd", extra_extensions=[(junk, False)]))


# Every error code of the PFX and certificate lists that a fixture produces, with that
# fixture ("pfx.wrong_password": checked without the password).
FIXTURE_FOR_CODE = {
    "pfx.wrong_password": "rsa_aes",
    "pfx.no_certificate": "key_only",
    "pfx.no_private_key": "certificate_only",
    "pfx.key_mismatch": "key_mismatch",
    "pfx.several_keys": "several_keys",
    "cert.expired": "expired",
    "cert.not_yet_valid": "not_yet_valid",
    "cert.weak_key": "rsa1024",
    "cert.weak_signature": "sha1_signed",
    "cert.missing_client_auth": "server_only",
    "cert.is_ca": "ca_certificate",
    "cert.untrusted_issuer": "self_signed",
    "cert.malformed": "malformed_extension",
}

# The fixtures the catalogue tests and the CLI tests go through, by name.
KINDS = (
    "rsa_aes", "rsa_legacy", "rsa_passwordless", "rsa_no_chain", "ec_p256", "ec_p384_legacy",
    "expiring_soon", "no_eku", "trusted_private", "expired", "not_yet_valid", "server_only",
    "rsa1024", "secp256k1", "sha1_signed", "ca_certificate", "self_signed", "wrong_chain",
    "key_mismatch", "key_only", "certificate_only", "malformed_extension", "several_keys",
)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _pkcs12_mac_key(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 7292 appendix B.2 (ID 3: MAC key) with SHA-256; one output block suffices."""
    def fill(data: bytes) -> bytes:  # repeated to a whole number of 64-byte blocks
        return (data * 64)[:64 * -(-len(data) // 64)]

    digest = bytes([3]) * 64 + fill(salt) + fill(password.decode().encode("utf-16-be") + b"\0\0")
    for _ in range(iterations):
        digest = _sha256(digest)
    return digest


def join_pfx(first: bytes, second: bytes, password: bytes) -> bytes:
    """One PFX holding the contents of two made with ``password`` (SHA-256 MAC), as
    ``cryptography`` cannot write a PFX with two keys."""
    from cryptography.hazmat.primitives import hmac

    from shared.certs.der import read_single

    def parts(data: bytes):
        version, auth_safe, mac_data = read_single(data).children()
        content_type, content = auth_safe.children()
        return version, content_type, read_single(read_single(content.content).octets()), mac_data

    version, content_type, safes_a, mac_data = parts(first)
    safes = _der(0x30, safes_a.content + parts(second)[2].content)
    digest_info, salt, iterations = mac_data.children()
    mac = hmac.HMAC(_pkcs12_mac_key(password, salt.content, iterations.as_int()),
                    hashes.SHA256())
    mac.update(safes)
    algorithm = digest_info.children()[0]
    new_mac = _der(0x30, _der(0x30, _der(0x30, algorithm.content) + _der(0x04, mac.finalize()))
                   + _der(0x04, salt.content) + _der(0x02, iterations.content))
    auth_safe = _der(0x30, _der(0x06, content_type.content) + _der(0xA0, _der(0x04, safes)))
    return _der(0x30, _der(0x02, version.content) + auth_safe + new_mac)


def sha1_leaf(issuer: Issued, common_name: str) -> Issued:
    """A client certificate signed with SHA-1, which only the ``openssl`` command still
    does (cryptography 50 refuses)."""
    key = new_key("rsa2048")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([
               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Energy Ltd"),
               x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "csr.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        (folder / "ca.pem").write_bytes(issuer.cert_pem())
        (folder / "ca.key").write_bytes(issuer.key_pem())
        (folder / "ext.cnf").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n"
            f"subjectAltName=DNS:{common_name}.invalid\n")
        subprocess.run(
            ["openssl", "x509", "-req", "-sha1", "-in", "csr.pem", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-set_serial", "4242", "-days", "365",
             "-extfile", "ext.cnf", "-out", "leaf.pem"],
            cwd=folder, check=True, capture_output=True)
        certificate = x509.load_pem_x509_certificate((folder / "leaf.pem").read_bytes())
    return Issued(certificate, key, issuer)
