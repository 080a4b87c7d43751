"""Dev certificates on disk: a local CA, a server certificate, a DIP-like client and signer.

``write_dev_certs(directory)`` creates a fresh set (``dip-edge dev-certs``);
``ensure_dev_certs(directory)`` creates it only when missing (``dip-edge serve`` on first
run). Leaf PEM files carry the issuing CA after the leaf, so a TLS client presents the
whole chain; keys are PKCS#8 PEM, readable by the owner only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from shared.certs.devpki import Issued, make_dev_pki


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


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _with_chain(issued: Issued) -> bytes:
    chain = [c for c in issued.chain() if c.subject != c.issuer]  # not the root
    return issued.cert_pem() + b"".join(c.public_bytes(Encoding.PEM) for c in chain)


def write_dev_certs(directory: Path | str) -> DevCertPaths:
    paths = DevCertPaths.in_dir(directory)
    paths.directory.mkdir(parents=True, exist_ok=True)
    pki = make_dev_pki()
    _write(paths.ca, pki.root.cert_pem())
    _write(paths.intermediate, pki.intermediate.cert_pem())
    for name, issued in (("server", pki.server), ("client", pki.client),
                         ("signer", pki.signer)):
        _write(getattr(paths, f"{name}_cert"), _with_chain(issued))
        _write(getattr(paths, f"{name}_key"), issued.key_pem(), private=True)
    return paths


def ensure_dev_certs(directory: Path | str) -> DevCertPaths:
    paths = DevCertPaths.in_dir(directory)
    return paths if paths.complete() else write_dev_certs(directory)
