"""Hostile and foreign input through ``check_pfx``: OpenSSL's malformed PKCS#12 files,
pyca's PKCS#12 vectors, other formats handed in by mistake, random and mutated bytes.
Every case must end as precise findings, never an exception, and never show a secret."""

from __future__ import annotations

import base64
import io
import logging
import zipfile
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs7,
    pkcs12,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.certs.devpki import Issued
from shared.certs.pfx_check import UNANALYSABLE, PfxPolicy, check_pfx
from tests.support.leaks import assert_no_secrets
from tests.support.pfx_factory import PASSWORD, PfxFactory, to_pfx
from tests.support.testdata import shared_testdata

POLICY = PfxPolicy()
OPENSSL_DIR = shared_testdata("openssl-pkcs12")
PYCA_DIR = Path(cryptography_vectors.__file__).parent / "pkcs12"
CODES = {"pfx.missing", "pfx.too_large", "pfx.not_pkcs12", "pfx.wrong_password",
         "pfx.no_certificate", "pfx.no_private_key", "pfx.key_mismatch", "cert.expired",
         "cert.not_yet_valid", "cert.weak_key", "cert.weak_signature",
         "cert.missing_client_auth", "cert.untrusted_issuer", "cert.is_ca", "cert.malformed",
         "pfx.several_keys"}


@pytest.fixture(scope="module")
def factory() -> PfxFactory:
    return PfxFactory()


def codes(report) -> list[str]:
    return [f.code for f in report.errors]


# -- OpenSSL's PKCS#12 test files (password 1234) ---------------------------------------

# What each file must give, and a phrase of the detail that says why.
OPENSSL_EXPECTED = {
    "bad1.p12": ("pfx.not_pkcs12", "authenticated safe is empty"),
    "bad2.p12": ("pfx.not_pkcs12", "item 1 of its authenticated safe (encryptedData) has no"),
    "bad3.p12": ("pfx.not_pkcs12", "item 1 of its authenticated safe (data) has no content"),
    "nomac_parse.p12": ("pfx.no_certificate", "holds no certificate and no private key"),
    "pbmac1_256_256.bad-iter.p12": ("pfx.wrong_password", "integrity check (MAC) fails"),
    "pbmac1_256_256.bad-salt.p12": ("pfx.wrong_password", "integrity check (MAC) fails"),
    "pbmac1_256_256.bad-key-len.p12": ("pfx.not_pkcs12", "PBMAC1 key length is 19"),
    "pbmac1_256_256.bad-len.p12": ("pfx.not_pkcs12", "PBMAC1 key length is 256"),
    "pbmac1_256_256.very-big-len.p12": ("pfx.not_pkcs12", "PBMAC1 key length is 3689"),
    "pbmac1_256_256.zero-len.p12": ("pfx.not_pkcs12", "PBMAC1 key length is 0"),
    # Named "negative" by OpenSSL; its bytes are 00 FF, which DER reads as 255.
    "pbmac1_256_256.negative-len.p12": ("pfx.not_pkcs12", "PBMAC1 key length is 255"),
    "pbmac1_256_256.no-len.p12": ("pfx.not_pkcs12", "has no key length"),
    "pbmac1_256_256.no-salt.p12": ("pfx.not_pkcs12", "key derivation has no salt"),
    "pbmac1_256_256.bad-salt-type.p12": ("pfx.not_pkcs12", "salt is not an octet string"),
}
# cryptography 50 verifies PBMAC1 (RFC 9579): these open with 1234. Their certificate is
# OpenSSL's self-signed CA test certificate, which expired in 2023.
OPENSSL_GOOD = ["pbmac1_256_256.good.p12", "pbmac1_256_256.good-shorter-key-len.p12",
                "pbmac1_512_256.good.p12", "pbmac1_512_512.good.p12",
                "pbmac1_sha1_hmac_and_prf.p12"]


def test_every_openssl_file_is_covered():
    assert sorted(p.name for p in OPENSSL_DIR.iterdir()) == sorted(
        [*OPENSSL_EXPECTED, *OPENSSL_GOOD])


@pytest.mark.parametrize("name", sorted(OPENSSL_EXPECTED))
@pytest.mark.parametrize("password", [b"1234", None], ids=["1234", "no-password"])
def test_openssl_bad_files_give_a_precise_finding(name, password):
    code, phrase = OPENSSL_EXPECTED[name]
    report = check_pfx((OPENSSL_DIR / name).read_bytes(), password, POLICY)
    if code == "pfx.wrong_password" and password is None:
        phrase = "none was given"
    assert codes(report)[0] == code
    assert phrase in report.errors[0].detail
    assert not report.valid


@pytest.mark.parametrize("name", OPENSSL_GOOD)
def test_openssl_pbmac1_files_open_and_their_certificate_is_judged(name):
    report = check_pfx((OPENSSL_DIR / name).read_bytes(), b"1234", POLICY)
    assert report.certificate is not None and report.private_key is None  # errors: no key out
    assert report.certificate.subject == "CN=tt,OU=rr,O=ee,L=ww,ST=qq,C=XX"
    assert codes(report) == ["cert.expired", "cert.is_ca", "cert.untrusted_issuer"]
    wrong = check_pfx((OPENSSL_DIR / name).read_bytes(), b"4321", POLICY)
    assert codes(wrong) == ["pfx.wrong_password"]


# -- pyca's PKCS#12 vectors ----------------------------------------------------------------

def _pyca_password(name: str) -> bytes | None:
    if name.startswith(("cert-", "no-cert-key")):
        return b"cryptography"
    return b"password" if name.endswith("-pwd.p12") and "no-pwd" not in name else None


def _pyca_expected(name: str) -> list[str]:
    if name == "no-cert-key-aes256cbc.p12":
        return ["pfx.no_certificate"]
    if name.startswith("no-cert") or name in {"cert-aes256cbc-no-key.p12",
                                              "java-truststore.p12"}:
        return ["pfx.no_private_key"]
    return ["cert.is_ca", "cert.untrusted_issuer"]  # pyca's self-signed test CA + its key


@pytest.mark.parametrize("name", sorted(p.name for p in PYCA_DIR.glob("*.p12")))
def test_pyca_vectors(name):
    assert len(list(PYCA_DIR.glob("*.p12"))) == 31
    data = (PYCA_DIR / name).read_bytes()
    password = _pyca_password(name)
    report = check_pfx(data, password, POLICY)
    assert codes(report) == _pyca_expected(name)
    if password is not None:
        assert codes(check_pfx(data, None, POLICY)) == ["pfx.wrong_password"]
        assert codes(check_pfx(data, b"wrong", POLICY)) == ["pfx.wrong_password"]


# -- other formats handed in by mistake ----------------------------------------------------

def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("credentials.pfx", data)
    return buffer.getvalue()


MISTAKES = {
    "pem certificate": (lambda f: f.good.cert_pem(), "PEM certificate"),
    "pem key": (lambda f: f.good.key_pem(), "PEM private key"),
    "pem certificate and key": (lambda f: f.good.cert_pem() + f.good.key_pem(),
                                "certificate and a private key"),
    "der certificate": (lambda f: f.good.cert_der(), "DER-encoded certificate"),
    "der key": (lambda f: f.good.private_key.private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()), "DER-encoded private key"),
    "pkcs7": (lambda f: pkcs7.serialize_certificates([f.good.certificate], Encoding.DER),
              "PKCS#7"),
    "zip": (lambda f: _zip(f.rsa_aes.data), "ZIP archive"),
    "base64": (lambda f: base64.encodebytes(f.rsa_aes.data), "base64 text"),
    "text": (lambda f: b"password: hunter2\n", "text file"),
    "truncated": (lambda f: f.rsa_aes.data[: len(f.rsa_aes.data) // 2], "truncated"),
    "random": (lambda f: bytes(range(7, 250)) * 3, "not a readable PKCS#12"),
    "ber sequence, not pkcs12": (lambda f: b"\x30\x80\x02\x01\x07\x00\x00", "version 7"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_other_formats_are_named(factory, case):
    make, phrase = MISTAKES[case]
    report = check_pfx(make(factory), None, POLICY)
    assert codes(report) == ["pfx.not_pkcs12"]
    assert phrase in report.errors[0].detail


def test_huge_input_is_refused_before_parsing():
    report = check_pfx(b"\x30\x84" + b"\xff" * (1024 * 1024), None, POLICY)
    assert codes(report) == ["pfx.too_large"]


# -- certificates cryptography loads but cannot fully use ------------------------------------

def _odd_leaf(factory, *, critical_unknown: bool = False, cn_bytes: bytes | None = None):
    """A client certificate from the test CA; its CN value re-encoded as ``cn_bytes`` (a
    whole DER string element of the same length: the signature then fails, which the
    checker must report after the name)."""
    extra = [(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
                                         b"\x05\x00"), True)] if critical_unknown else []
    issued = factory.leaf("leafmarkerXX", extra_extensions=extra)
    if cn_bytes is None:
        return issued
    der = issued.cert_der()
    assert der.count(b"\x0c\x0cleafmarkerXX") == 1
    return Issued(x509.load_der_x509_certificate(
        der.replace(b"\x0c\x0cleafmarkerXX", cn_bytes)), issued.private_key, factory.issuing)


def test_a_critical_extension_nobody_knows_is_reported(factory):
    # RFC 5280 4.2: a TLS peer must refuse a certificate with an unrecognised critical
    # extension, so GlobalSign's login would fail; the checker said "valid".
    report = check_pfx(to_pfx(_odd_leaf(factory, critical_unknown=True)).data, PASSWORD, POLICY)
    assert codes(report) == ["cert.malformed"]
    assert "1.3.6.1.4.1.99999.1" in report.errors[0].detail


def test_a_name_cryptography_cannot_decode_is_cert_malformed(factory):
    # A T.61 string with non-ASCII bytes loads, but reading the name raises ValueError:
    # the checker answered "pfx.not_pkcs12: could not be analysed" for a valid PFX.
    leaf = _odd_leaf(factory, cn_bytes=b"\x14\x0cleafmarker\xe9\xe9")
    report = check_pfx(to_pfx(leaf).data, PASSWORD, POLICY)
    assert codes(report) == ["cert.malformed"]
    assert "subject" in report.errors[0].detail


def test_a_chain_certificate_with_an_undecodable_name_is_cert_malformed(factory):
    leaf = factory.good
    odd = _odd_leaf(factory, cn_bytes=b"\x14\x0cleafmarker\xe9\xe9").certificate
    data = pkcs12.serialize_key_and_certificates(b"x", leaf.private_key, leaf.certificate,
                                                 [odd], NoEncryption())
    report = check_pfx(data, None, POLICY)
    assert codes(report) == ["cert.malformed"]
    assert report.errors[0].detail.startswith("Chain certificate 1 could not be fully parsed")


def test_an_unparsable_certificate_in_a_passwordless_pfx_is_not_a_password_problem(factory):
    # cryptography refuses the whole file ("invalid password or PKCS12 data"); the bags are
    # not encrypted, so the certificate can be named as the problem.
    leaf = _odd_leaf(factory, cn_bytes=b"\x0c\x0cleafmarker\xff\xfe")  # bad UTF-8
    for password in (None, b"anything"):
        report = check_pfx(to_pfx(leaf, None).data, password, POLICY)
        assert codes(report) == ["cert.malformed"], report.errors
        assert "certificate 1" in report.errors[0].detail


# -- random and mutated bytes ----------------------------------------------------------------

def _assert_only_findings(report) -> None:
    assert set(codes(report)) <= CODES
    assert all(f.detail != UNANALYSABLE for f in report.errors), "the last-resort guard fired"
    assert report.valid == (not report.errors)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_give_findings(data):
    _assert_only_findings(check_pfx(data, None, POLICY))


@pytest.fixture(scope="module")
def seeds(factory) -> list[bytes]:
    return [factory.rsa_passwordless.data, factory.rsa_aes.data, factory.rsa_legacy.data,
            to_pfx(factory.leaf("small", key_kind="p256"), None, chain=False).data]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_pfx_bytes_give_findings(seeds, data):
    original = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        at = data.draw(st.integers(0, len(original) - 1))
        if kind == "flip":
            original[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del original[at:at + data.draw(st.integers(1, 64))]
        elif kind == "insert":
            original[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:  # a length byte of an early header set to something absurd
            original[data.draw(st.integers(1, 12)) % len(original)] = data.draw(
                st.sampled_from([0x00, 0x7F, 0x80, 0x84, 0xFF]))
        if not original:
            break
    password = data.draw(st.sampled_from([None, PASSWORD, b"wrong"]))
    _assert_only_findings(check_pfx(bytes(original), password, POLICY))


# -- secrets never leave the checker ------------------------------------------------------------

def test_no_password_or_key_in_findings_facts_or_logs(factory, caplog):
    caplog.set_level(logging.DEBUG)
    texts, keys = [], []
    for name, pfx in factory.kinds().items():
        for password in (pfx.password, b"wrong-" + PASSWORD, None):
            report = check_pfx(pfx.data, password, POLICY)
            texts.append(repr(report.to_dict()))
            texts += [f.detail for f in (*report.errors, *report.warnings)]
        if pfx.issued is not None:
            keys.append(pfx.issued.private_key.private_bytes(
                Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
        assert name
    everything = "\n".join(texts) + caplog.text
    assert_no_secrets(everything, PASSWORD, b"wrong-" + PASSWORD, *keys)
    assert "pfx.wrong_password" in everything  # the scan saw the password cases
