"""Certificates and PFX files made by tools we did not write: the ``openssl`` command and
Java's ``keytool``, as a certificate admin makes them.

:class:`OpensslPki` builds, in a directory, an RSA root and intermediate (organisation
``Acme Outside Test``, trusted only with ``--trust``) and issues leaves with ``openssl
x509 -req``; :meth:`OpensslPki.pfx` exports with ``openssl pkcs12 -export`` (``-legacy``
for RC2). :func:`keytool_pfx` makes a key pair with ``keytool``, has the intermediate sign
its request and imports the chain, optionally re-exporting with Java's legacy PKCS#12
algorithms (``-J-Dkeystore.pkcs12.legacy``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KEYTOOL = shutil.which("keytool")
STOREPASS = "Keytool-Store-Pass-4e1"  # distinctive: tests search output for it


def run(*argv: str, cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[:500]}")
    return done.stdout


class OpensslPki:
    """A root and an intermediate CA made with ``openssl``, in ``folder``."""

    ORG = "Acme Outside Test"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca("root", f"/C=GB/O={self.ORG}/CN=Acme Outside Root", None)
        self._ca("intermediate", f"/C=GB/O={self.ORG}/CN=Acme Outside Issuing CA", "root")

    def path(self, name: str) -> Path:
        return self.folder / name

    def _ca(self, name: str, subject: str, issuer: str | None) -> None:
        ext = self.path(f"{name}.ext")
        ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,"
                       "cRLSign\nsubjectKeyIdentifier=hash\n"
                       + ("authorityKeyIdentifier=keyid\n" if issuer else ""))
        run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
            f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=self.folder)
        signer = (["-signkey", f"{name}.key"] if issuer is None else
                  ["-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key", "-set_serial", "1001"])
        run("openssl", "x509", "-req", "-in", f"{name}.csr", *signer, "-days", "365",
            "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.folder)

    def leaf(self, name: str, subject: str, *, digest: str = "sha256", san: bool = True,
             issuer: str = "intermediate", csr: Path | None = None) -> Path:
        """Issue ``name.pem`` (and ``name.key`` unless ``csr`` is given) for clientAuth."""
        ext = self.path(f"{name}.ext")
        ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,"
                       "digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                       + (f"subjectAltName=DNS:{name}.acme-energy.example\n" if san else ""))
        if csr is None:
            run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=self.folder)
            csr = self.path(f"{name}.csr")
        run("openssl", "x509", "-req", "-in", str(csr), "-CA", f"{issuer}.pem", "-CAkey",
            f"{issuer}.key", "-set_serial", str(abs(hash(name)) % 10**9 + 2),
            "-days", "90", f"-{digest}", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=self.folder)
        return self.path(f"{name}.pem")

    def pfx(self, name: str, password: str, *, chain: tuple[str, ...] = ("intermediate",),
            options: tuple[str, ...] = ()) -> bytes:
        """``openssl pkcs12 -export`` of leaf ``name`` with the given chain certificates."""
        out = self.path(f"{name}-{abs(hash((chain, options))) % 10**6}.p12")
        chain_file = self.path(f"{name}-chain.pem")
        chain_file.write_bytes(b"".join(self.path(f"{c}.pem").read_bytes() for c in chain))
        extra = ["-certfile", str(chain_file)] if chain else []
        run("openssl", "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key",
            *extra, "-passout", f"pass:{password}", *options, "-out", str(out),
            cwd=self.folder)
        return out.read_bytes()


def keytool_pfx(pki: OpensslPki, name: str, *, legacy: bool = False) -> bytes:
    """A PKCS#12 keystore made by ``keytool`` (store password :data:`STOREPASS`): a key
    pair, its certificate issued by ``pki``'s intermediate, and the chain imported."""
    store = pki.path(f"{name}.p12")
    folder = pki.folder
    common = ("-keystore", str(store), "-storepass", STOREPASS, "-storetype", "PKCS12")
    fast = ("-J-XX:TieredStopAtLevel=1",)  # keytool runs briefly: skip the optimising JIT
    if not store.exists():
        run(KEYTOOL, *fast, "-genkeypair", "-alias", "dip", "-keyalg", "RSA", "-keysize",
            "2048", "-dname", f"CN={name},O=Acme Energy Ltd,C=GB", "-validity", "90",
            *common, cwd=folder)
        run(KEYTOOL, *fast, "-certreq", "-alias", "dip", "-file", f"{name}.csr", *common,
            cwd=folder)
        pki.leaf(name, "", csr=pki.path(f"{name}.csr"))
        for alias, pem in (("root", "root.pem"), ("intermediate", "intermediate.pem"),
                           ("dip", f"{name}.pem")):
            run(KEYTOOL, *fast, "-importcert", "-noprompt", "-alias", alias, "-file", pem,
                *common, cwd=folder)
    if not legacy:
        return store.read_bytes()
    old = pki.path(f"{name}-legacy.p12")
    run(KEYTOOL, *fast, "-J-Dkeystore.pkcs12.legacy", "-importkeystore", "-noprompt",
        "-srckeystore", str(store), "-srcstorepass", STOREPASS, "-srcstoretype", "PKCS12",
        "-destkeystore", str(old), "-deststorepass", STOREPASS, "-deststoretype", "PKCS12",
        cwd=folder)
    return old.read_bytes()
