"""TLS client contexts for Atlas: the server's trust and the account's client certificate.

OpenSSL loads a certificate chain only from a file, so the key and certificates are
written to an anonymous in-memory file (``memfd_create``) and loaded through
``/proc/self/fd``; the key never touches a disk. Where memfd is unavailable, a private
0600 temporary file is used and deleted as soon as OpenSSL has read it.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from shared.problems import CONFIG_INVALID, DipEdgeError
from shared.settings import read_text_setting


def client_context(certificate: x509.Certificate, private_key: PrivateKeyTypes,
                   chain: Sequence[x509.Certificate] = (),
                   ca_bundle: str | None = None) -> ssl.SSLContext:
    """An ``SSLContext`` presenting ``certificate`` (with ``chain``) and trusting ``ca_bundle``.

    ``ca_bundle`` is inline PEM or a file path (``ATLAS_CA_BUNDLE``); ``None`` means the
    system trust store; an unreadable one raises ``DipEdgeError(config.invalid)``. OpenSSL
    refusing the key or certificate raises ``ssl.SSLError``. Pass the result to httpx as
    ``verify=``.
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle:
        try:
            context.load_verify_locations(cadata=read_text_setting(ca_bundle))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise DipEdgeError(CONFIG_INVALID(
                f"ATLAS_CA_BUNDLE: not readable PEM certificates ({type(exc).__name__})."
            )) from None
    encoding = serialization.Encoding.PEM
    pem = private_key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    pem += certificate.public_bytes(encoding)
    pem += b"".join(c.public_bytes(encoding) for c in chain if c.subject != c.issuer)
    _load_chain(context, pem)
    return context


def _load_chain(context: ssl.SSLContext, pem: bytes) -> None:
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("atlas-client", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="atlas-", suffix=".pem")  # created 0600
    try:
        try:
            _write_all(fd, pem)
        finally:
            os.close(fd)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
