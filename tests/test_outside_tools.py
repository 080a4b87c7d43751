"""Verdicts on files made by tools we did not write — ``openssl`` and Java's ``keytool`` —
through the installed ``dip-edge check-pfx`` / ``check-cert`` commands (subprocesses), as
a certificate admin would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.leaks import assert_no_secrets
from tests.support.outside_tools import KEYTOOL, STOREPASS, OpensslPki, keytool_pfx
from tests.support.words import assert_our_words

DIP_EDGE = str(Path(sys.executable).parent / "dip-edge")
PASSWORD = "Outside-Pfx-Pass-93c"
CLEARED = ("PFX_TRUSTED_ISSUERS", "EXPIRY_WARNING_DAYS", "PFX_PASSWORD",
           "DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES", "DIP_CLIENT_IDENTITIES",
           "DIP_CLIENT_EKU")
needs_keytool = pytest.mark.skipif(KEYTOOL is None, reason="keytool is not installed (Debian: "
                                   "apt-get install openjdk-17-jre-headless)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> OpensslPki:
    return OpensslPki(tmp_path_factory.mktemp("openssl-pki"))


def check_pfx(pki: OpensslPki, data: bytes, *args: str, password: str | None = PASSWORD,
              trust: str | None = "root") -> tuple[int, dict, str]:
    path = pki.path(f"input-{abs(hash(data)) % 10**8}.pfx")
    path.write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    argv = [DIP_EDGE, "check-pfx", str(path), "--offline", "--json", *args]
    if password is not None:
        env["PFX_PASSWORD"] = password
        argv += ["--password-env", "PFX_PASSWORD"]
    if trust:
        argv += ["--trust", str(pki.path(f"{trust}.pem"))]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr, done.stderr
    assert_no_secrets(done.stdout + done.stderr, PASSWORD, STOREPASS)
    return done.returncode, json.loads(done.stdout), done.stdout


def codes(findings: list[dict]) -> list[str]:
    return [f["code"] for f in findings]


# --- openssl ----------------------------------------------------------------------------


def test_openssl_pfx_is_valid_and_its_protection_is_named(pki):
    pki.leaf("plain", "/C=GB/O=Acme Energy Ltd/CN=acme-plain")
    status, doc, _ = check_pfx(pki, pki.pfx("plain", PASSWORD, options=("-iter", "4096")))
    assert (status, doc["errors"], doc["warnings"]) == (0, [], [])
    # OpenSSL 3's defaults: AES-256-CBC under PBKDF2-HMAC-SHA-256, an HMAC-SHA-256 MAC
    # (-iter sets the MAC's count too).
    assert doc["pkcs12"] == {
        "mac": {"algorithm": "HMAC-SHA-256", "iterations": 4096, "legacy": False},
        "certificateEncryption": [{"algorithm": "PBES2 AES-256-CBC (PBKDF2 with HMAC-SHA-256)",
                                   "iterations": 4096, "legacy": False}],
        "keyEncryption": [{"algorithm": "PBES2 AES-256-CBC (PBKDF2 with HMAC-SHA-256)",
                           "iterations": 4096, "legacy": False}]}


def test_sha1_leaf_signed_by_its_real_issuer_is_weak_signature_only(pki):
    pki.leaf("sha1", "/C=GB/O=Acme Energy Ltd/CN=acme-sha1", digest="sha1")
    verify = subprocess.run(["openssl", "verify", "-CAfile", "root.pem", "-untrusted",
                             "intermediate.pem", "sha1.pem"], cwd=pki.folder,
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr  # openssl: the chain is sound
    status, doc, out = check_pfx(pki, pki.pfx("sha1", PASSWORD))
    assert status == 1 and codes(doc["errors"]) == ["cert.weak_signature"]
    assert "SHA-1" in doc["errors"][0]["detail"]
    assert doc["certificate"]["signatureHash"] == "sha1"
    assert_our_words(out)


def test_sha1_leaf_through_the_webhook_policy_names_sha1_in_our_words(pki, capsys):
    from shared.cli import main

    pki.leaf("sha1", "/C=GB/O=Acme Energy Ltd/CN=acme-sha1", digest="sha1")
    status = main(["check-cert", str(pki.path("sha1.pem")), "--chain",
                   str(pki.path("intermediate.pem")), "--anchors", str(pki.path("root.pem")),
                   "--identities", json.dumps([{"common_name": "acme-sha1"}]), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert status == 1 and codes(doc["errors"]) == ["clientcert.untrusted"]
    assert "signed with SHA-1, which is not accepted" in doc["errors"][0]["detail"]
    assert_our_words(json.dumps(doc))


@pytest.mark.parametrize("export", ["mac_empty_password", "no_mac_no_encryption"])
def test_password_given_for_a_passwordless_pfx_is_a_warning(pki, export):
    pki.leaf("nopass", "/C=GB/O=Acme Energy Ltd/CN=acme-nopass")
    options = ("-nomac", "-keypbe", "NONE", "-certpbe", "NONE") \
        if export == "no_mac_no_encryption" else ()
    data = pki.pfx("nopass", "", options=options)
    status, doc, _ = check_pfx(pki, data)
    assert status == 0 and doc["errors"] == []
    assert codes(doc["warnings"]) == ["pfx.password_unused"]
    # Without the password the same file is clean.
    status, doc, _ = check_pfx(pki, data, password=None)
    assert (status, doc["warnings"]) == (0, [])


def test_missing_intermediate_is_named_as_absent_from_the_file(pki):
    pki.leaf("orphan", "/C=GB/O=Acme Energy Ltd/CN=acme-orphan")
    status, doc, out = check_pfx(pki, pki.pfx("orphan", PASSWORD, chain=()))
    assert status == 1 and codes(doc["errors"]) == ["cert.untrusted_issuer"]
    detail = doc["errors"][0]["detail"]
    assert "'CN=Acme Outside Issuing CA,O=Acme Outside Test,C=GB'" in detail
    assert "no certificate of that name is in the PFX" in detail and "whole chain" in detail
    # With the intermediate in the file it is valid.
    assert check_pfx(pki, pki.pfx("orphan", PASSWORD))[0] == 0


def test_openssl_legacy_rc2_and_3des_are_a_warning_naming_algorithms_and_iterations(pki):
    pki.leaf("legacy", "/C=GB/O=Acme Energy Ltd/CN=acme-legacy")
    data = pki.pfx("legacy", PASSWORD, options=("-legacy", "-certpbe", "PBE-SHA1-RC2-40",
                                                "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1",
                                                "-iter", "3000"))
    status, doc, _ = check_pfx(pki, data)
    assert status == 0 and doc["errors"] == []
    assert codes(doc["warnings"]) == ["pfx.legacy_encryption"]
    detail = doc["warnings"][0]["detail"]
    assert "RC2-40" in detail and "3DES" in detail and "-legacy" in detail
    assert doc["pkcs12"]["mac"] == {"algorithm": "HMAC-SHA-1", "iterations": 3000,
                                    "legacy": False}
    assert doc["pkcs12"]["certificateEncryption"] == [
        {"algorithm": "RC2-40 (pbeWithSHAAnd40BitRC2-CBC)", "iterations": 3000, "legacy": True}]
    assert doc["pkcs12"]["keyEncryption"] == [
        {"algorithm": "3DES (pbeWithSHAAnd3-KeyTripleDES-CBC)", "iterations": 3000,
         "legacy": True}]


def test_human_output_names_the_protection(pki):
    pki.leaf("plain", "/C=GB/O=Acme Energy Ltd/CN=acme-plain")
    path = pki.path("human.pfx")
    path.write_bytes(pki.pfx("plain", PASSWORD))
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PFX_PASSWORD"] = PASSWORD
    done = subprocess.run([DIP_EDGE, "check-pfx", str(path), "--offline", "--password-env",
                           "PFX_PASSWORD", "--trust", str(pki.path("root.pem"))],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout
    assert "integrity    HMAC-SHA-256, 2,048 iteration(s)" in done.stdout
    assert "PBES2 AES-256-CBC (PBKDF2 with HMAC-SHA-256)" in done.stdout


def test_client_certificate_without_subject_alt_name_is_accepted_by_check_cert(pki, capsys):
    from shared.cli import main

    leaf = pki.leaf("nosan", "/C=GB/O=Elexon Limited/CN=dip-client-nosan", san=False)
    verify = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile",
                             "root.pem", "-untrusted", "intermediate.pem", "nosan.pem"],
                            cwd=pki.folder, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    identities = json.dumps([{"subject": "C = GB, O = Elexon Limited, CN = dip-client-nosan",
                              "issuer_subject": "/C=GB/O=Acme Outside Test/CN=Acme Outside "
                                                "Issuing CA"}])
    status = main(["check-cert", str(leaf), "--chain", str(pki.path("intermediate.pem")),
                   "--anchors", str(pki.path("root.pem")), "--identities", identities,
                   "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert (status, doc["errors"]) == (0, []), doc
    assert doc["certificate"]["dnsNames"] == []


# --- keytool ----------------------------------------------------------------------------


@needs_keytool
def test_keytool_pkcs12_is_valid_and_its_protection_is_named(pki):
    status, doc, _ = check_pfx(pki, keytool_pfx(pki, "acme-keytool"), password=STOREPASS)
    assert (status, doc["errors"], doc["warnings"]) == (0, [], []), doc
    assert doc["certificate"]["commonName"] == "acme-keytool"
    # Java 17's defaults: PBES2 AES-256 and an HMAC-SHA-256 MAC, 10,000 iterations.
    assert doc["pkcs12"]["mac"] == {"algorithm": "HMAC-SHA-256", "iterations": 10000,
                                    "legacy": False}
    assert {s["algorithm"] for s in doc["pkcs12"]["keyEncryption"]} == {
        "PBES2 AES-256-CBC (PBKDF2 with HMAC-SHA-256)"}


@needs_keytool
def test_keytool_legacy_keystore_is_a_legacy_encryption_warning(pki):
    status, doc, _ = check_pfx(pki, keytool_pfx(pki, "acme-keytool", legacy=True),
                               password=STOREPASS)
    assert status == 0 and doc["errors"] == []
    assert codes(doc["warnings"]) == ["pfx.legacy_encryption"]
    assert doc["pkcs12"]["certificateEncryption"][0]["algorithm"] == \
        "RC2-40 (pbeWithSHAAnd40BitRC2-CBC)"
    assert doc["pkcs12"]["mac"]["algorithm"] == "HMAC-SHA-1"
