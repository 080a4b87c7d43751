"""The PFX checker per kind of PFX, against bare ``pkcs12.load_pkcs12`` of the same bytes.

The difference is what the checker adds (leaf selection, facts, policy, issuer walk);
most of both is the password-based key derivation of the encrypted file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12

from bench import Figure, median_seconds
from shared.certs.pfx_check import PfxPolicy, check_pfx
from tests.support.pfx_factory import PfxFactory

RUNS = 25
KINDS = ("rsa_aes", "rsa_legacy", "rsa_passwordless", "ec_p256", "expired", "key_mismatch")


def run() -> list[Figure]:
    factory, policy = PfxFactory(), PfxPolicy()
    figures = []
    for kind in KINDS:
        pfx = getattr(factory, kind)
        checked = median_seconds(lambda p=pfx: check_pfx(p.data, p.password, policy), runs=RUNS)
        loaded = median_seconds(lambda p=pfx: pkcs12.load_pkcs12(p.data, p.password),
                                runs=RUNS)
        figures.append(Figure("check-pfx", f"check_pfx {kind} ({len(pfx.data)} B)",
                              checked * 1000, "ms", "pkcs12.load_pkcs12", loaded * 1000,
                              RUNS))
    wrong = factory.rsa_aes
    checked = median_seconds(lambda: check_pfx(wrong.data, b"wrong", policy), runs=RUNS)
    loaded = median_seconds(lambda: _refused(wrong.data), runs=RUNS)
    figures.append(Figure("check-pfx", "check_pfx rsa_aes, wrong password (diagnosed)",
                          checked * 1000, "ms", "load_pkcs12 refusing it", loaded * 1000, RUNS,
                          "three password attempts: given, none, empty"))
    figures.append(_command_line(factory))
    return figures


def _command_line(factory: PfxFactory) -> Figure:
    """The whole ``dip-edge check-pfx --offline`` process on an AES-encrypted RSA-2048 PFX,
    against a bare interpreter start."""
    dip_edge = str(Path(sys.executable).parent / "dip-edge")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rsa_aes.pfx"
        path.write_bytes(factory.rsa_aes.data)
        env = {**os.environ, "PFX_PW": factory.rsa_aes.password.decode()}
        command = [dip_edge, "check-pfx", str(path), "--password-env", "PFX_PW", "--offline"]
        cli = median_seconds(lambda: subprocess.run(command, env=env, capture_output=True),
                             runs=7, warmup=1)
    bare = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"]), runs=7,
                          warmup=1)
    return Figure("check-pfx", "dip-edge check-pfx --offline (RSA-2048, AES), whole process",
                  cli * 1000, "ms", "python -c pass", bare * 1000, 7)


def _refused(data: bytes) -> None:
    try:
        pkcs12.load_pkcs12(data, b"wrong")
    except ValueError:
        pass
