"""Dev certificates on disk: a local CA, a server certificate, a DIP-like client and signer.

``write_dev_certs(directory)`` creates a fresh set (``dip-edge dev-certs``);
``ensure_dev_certs(directory)`` creates it only when missing (``dip-edge serve`` on first
run). Leaf PEM files carry the issuing CA after the leaf, so a TLS client presents the
whole chain; keys are PKCS#8 PEM. The directory is 0700 and every file 0600 (it lives in
the state directory, which holds nothing for others to read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from shared.certs.devpki import Issued, make_dev_pki
from shared.private import private_dir, write_private


@dataclass(frozen=True)
class DevCertPaths:
    directory: Path
    ca: Path  # the root: trust it to verify the server, or as the webhook's anchor
    intermediate: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    signer_cert: Path
    signer_key: Path

    @classmethod
    def in_dir(cls, directory: Path | str) -> DevCertPaths:
        d = Path(directory)
        return cls(d, d / "ca.pem", d / "intermediate.pem", d / "server.pem", d / "server.key",
                   d / "client.pem", d / "client.key", d / "signer.pem", d / "signer.key")

    def complete(self) -> bool:
        return all(getattr(self, f).is_file() for f in self.__dataclass_fields__
                   if f != "directory")


def _with_chain(issued: Issued) -> bytes:
    chain = [c for c in issued.chain() if c.subject != c.issuer]  # not the root
    return issued.cert_pem() + b"".join(c.public_bytes(Encoding.PEM) for c in chain)


def write_dev_certs(directory: Path | str) -> DevCertPaths:
    paths = DevCertPaths.in_dir(directory)
    private_dir(paths.directory)
    pki = make_dev_pki()
    write_private(paths.ca, pki.root.cert_pem())
    write_private(paths.intermediate, pki.intermediate.cert_pem())
    for name, issued in (("server", pki.server), ("client", pki.client),
                         ("signer", pki.signer)):
        write_private(getattr(paths, f"{name}_cert"), _with_chain(issued))
        write_private(getattr(paths, f"{name}_key"), issued.key_pem())
    return paths


def ensure_dev_certs(directory: Path | str) -> DevCertPaths:
    paths = DevCertPaths.in_dir(directory)
    return paths if paths.complete() else write_dev_certs(directory)
