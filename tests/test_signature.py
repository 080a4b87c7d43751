"""The DIP message signature (``shared/dip/signature.py``): signing like the DIP, and every
``signature.*`` outcome of verification, in the documented order."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from shared.certs.devpki import issue, new_key
from shared.certs.trust import TrustPolicy
from shared.dip.signature import (
    SIGNATURE_HEADERS,
    SignatureVerifier,
    canonical_string,
)
from shared.problems import DipEdgeError
from shared.settings import load_settings
from tests.support.dip_pki import SIGNER_CN
from tests.support.leaks import assert_no_secrets

URL = "https://Webhook.Participant.example/api/webhooks/dip/IF-033?Ref=A"
BODY = b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"}}}}]'


@pytest.fixture(scope="module")
def verifier(dip_pki) -> SignatureVerifier:
    return SignatureVerifier.from_settings(load_settings(dip_pki.env()))


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _code(verifier, headers, body=BODY, url=URL, **kw) -> str:
    with pytest.raises(DipEdgeError) as caught:
        verifier.verify("POST", url, _lower(headers), body, **kw)
    return caught.value.code


def test_sign_request_produces_the_documented_headers(dip_pki):
    at = dt.datetime(2025, 6, 27, 14, 29, 9, 61_999, tzinfo=dt.UTC)
    headers = dip_pki.sign("post", URL, BODY, at=at)
    assert tuple(headers) == SIGNATURE_HEADERS
    assert headers["X-DIP-Signature-Date"] == "2025-06-27T14:29:09.061Z"
    assert headers["X-DIP-Content-Hash"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    pem = base64.b64decode(headers["X-DIP-Signature-Certificate"])
    assert pem == dip_pki.signer.cert_pem() and b"\r" not in pem
    signed = (f"POST;{URL.lower()};2025-06-27T14:29:09.061Z;"
              f"{headers['X-DIP-Content-Hash']}").encode()
    assert canonical_string("post", URL, headers["X-DIP-Signature-Date"],
                            headers["X-DIP-Content-Hash"]) == signed
    dip_pki.signer.private_key.public_key().verify(
        base64.b64decode(headers["X-DIP-Signature"]), signed, padding.PKCS1v15(), hashes.SHA256())


def test_a_dip_signed_request_verifies(dip_pki, verifier):
    verdict = verifier.verify("POST", URL, _lower(dip_pki.sign("POST", URL, BODY)), BODY)
    assert verdict.signed and verdict.signer.common_name == SIGNER_CN


def test_missing_headers_by_mode(dip_pki):
    required = SignatureVerifier.from_settings(load_settings(dip_pki.env()))
    assert _code(required, {}) == "signature.missing"
    optional = SignatureVerifier.from_settings(
        load_settings(dip_pki.env(DIP_SIGNATURE_MODE="optional")))
    assert optional.verify("POST", URL, {}, BODY).signed is False
    assert _code(optional, {"X-DIP-Signature": "AAAA"}) == "signature.malformed"
    assert optional.verify("POST", URL, _lower(dip_pki.sign("POST", URL, BODY)), BODY).signed
    off = SignatureVerifier.from_settings(load_settings(dip_pki.env(DIP_SIGNATURE_MODE="off")))
    assert off.policy is None
    assert off.verify("POST", URL, {"x-dip-signature": "garbage"}, b"x").signed is False


@pytest.mark.parametrize("keep", [(0,), (1, 2), (0, 1, 3), (1, 2, 3)])
def test_some_but_not_all_headers_is_malformed(dip_pki, verifier, keep):
    headers = dip_pki.sign("POST", URL, BODY)
    partial = {SIGNATURE_HEADERS[i]: headers[SIGNATURE_HEADERS[i]] for i in keep}
    assert _code(verifier, partial) == "signature.malformed"


@pytest.mark.parametrize("header", SIGNATURE_HEADERS)
@pytest.mark.parametrize("garbage", ["%%%not-base64%%%", "", "é😀", "A" * 40_000, "AAAA"])
def test_garbage_in_every_signature_header_is_malformed(dip_pki, verifier, header, garbage):
    headers = dip_pki.sign("POST", URL, BODY)
    headers[header] = garbage
    assert _code(verifier, headers) == "signature.malformed"


@pytest.mark.parametrize("date", ["2025-06-27 14:29:09.061Z", "2025-06-27T14:29:09.061+01:00",
                                  "2025-13-40T14:29:09.061Z", "yesterday", "1751034549"])
def test_undecodable_date_is_malformed(dip_pki, verifier, date):
    headers = dip_pki.sign("POST", URL, BODY)
    headers["X-DIP-Signature-Date"] = date
    assert _code(verifier, headers) == "signature.malformed"


@pytest.mark.parametrize("certificate", [
    b"just text", b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nQUJDRA==\n-----END CERTIFICATE-----\n", b"\x30\x03\x02\x01\x00",
])
def test_undecodable_signer_certificate_is_malformed(dip_pki, verifier, certificate):
    headers = dip_pki.sign("POST", URL, BODY)
    headers["X-DIP-Signature-Certificate"] = base64.b64encode(certificate).decode()
    assert _code(verifier, headers) == "signature.malformed"


def test_tampered_body_with_the_original_signature(dip_pki, verifier):
    headers = dip_pki.sign("POST", URL, BODY)
    tampered = BODY.replace(b"IF-033", b"IF-034")
    assert _code(verifier, headers, body=tampered) == "signature.content_hash_mismatch"
    headers["X-DIP-Content-Hash"] = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    assert _code(verifier, headers, body=tampered) == "signature.invalid"


def test_signature_from_another_key(dip_pki, verifier):
    headers = dip_pki.sign("POST", URL, BODY, private_key=dip_pki.other_signer_key)
    assert _code(verifier, headers) == "signature.invalid"


def test_stale_and_future_dates(dip_pki, verifier):
    now = dt.datetime.now(dt.UTC)
    for offset, ok in ((-299, True), (299, True), (-301, False), (301, False),
                       (-86400, False)):
        headers = dip_pki.sign("POST", URL, BODY, at=now + dt.timedelta(seconds=offset))
        if ok:
            assert verifier.verify("POST", URL, _lower(headers), BODY, now=now).signed
        else:
            assert _code(verifier, headers, now=now) == "signature.stale"


@pytest.mark.parametrize("who", ["stranger", "impostor_signer", "expired", "client"])
def test_signer_certificate_that_is_not_the_dips(dip_pki, verifier, who):
    signer = getattr(dip_pki, who)
    headers = dip_pki.sign("POST", URL, BODY, signer=signer)
    assert _code(verifier, headers) == "signature.untrusted_certificate"


def test_non_rsa_signer_key_is_invalid(dip_pki, verifier):
    ec_signer = issue(SIGNER_CN, organization="Elexon Limited", country="GB",
                      issuer=dip_pki.intermediate, dns_names=(SIGNER_CN,), key=new_key("p256"))
    headers = dip_pki.sign("POST", URL, BODY, signer=ec_signer,
                           private_key=dip_pki.other_signer_key)
    with pytest.raises(DipEdgeError) as caught:
        verifier.verify("POST", URL, _lower(headers), BODY)
    assert caught.value.code == "signature.invalid" and "not RSA" in str(caught.value)


def test_checks_run_in_the_documented_order(dip_pki, verifier):
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(hours=1)
    # stale AND tampered: the hash is checked first
    headers = dip_pki.sign("POST", URL, BODY, at=old)
    assert _code(verifier, headers, body=b"[]", now=now) == "signature.content_hash_mismatch"
    # stale AND untrusted signer: staleness first
    headers = dip_pki.sign("POST", URL, BODY, at=old, signer=dip_pki.stranger)
    assert _code(verifier, headers, now=now) == "signature.stale"
    # untrusted signer AND wrong key: the certificate first
    headers = dip_pki.sign("POST", URL, BODY, signer=dip_pki.stranger,
                           private_key=dip_pki.other_signer_key)
    assert _code(verifier, headers, now=now) == "signature.untrusted_certificate"


def test_url_is_rebuilt_from_the_public_base_url(dip_pki):
    policy = TrustPolicy.for_signer(load_settings(dip_pki.env()))
    verifier = SignatureVerifier(policy, mode="required", max_skew_seconds=300,
                                 public_base_url="https://Webhook.Participant.example")
    internal = "http://127.0.0.1:7071/api/webhooks/dip/IF-033?Ref=A"
    assert verifier.signed_url(internal) == URL
    assert verifier.verify("POST", internal, _lower(dip_pki.sign("POST", URL, BODY)), BODY).signed
    signed_internally = dip_pki.sign("POST", internal, BODY)
    assert _code(verifier, signed_internally, url=internal) == "signature.invalid"
    # without a public base URL, the request's own URL is what must have been signed
    plain = SignatureVerifier(policy, mode="required", max_skew_seconds=300, public_base_url=None)
    assert plain.verify("POST", internal, _lower(signed_internally), BODY).signed
    assert _code(plain, signed_internally, url=internal.replace("Ref=A", "Ref=B")) \
        == "signature.invalid"


def test_method_is_part_of_the_signature(dip_pki, verifier):
    headers = _lower(dip_pki.sign("PUT", URL, BODY))
    with pytest.raises(DipEdgeError) as caught:
        verifier.verify("POST", URL, headers, BODY)
    assert caught.value.code == "signature.invalid"


def test_skew_and_mode_settings(dip_pki):
    settings = load_settings(dip_pki.env(DIP_SIGNATURE_MAX_SKEW_SECONDS="5"))
    verifier = SignatureVerifier.from_settings(settings)
    now = dt.datetime.now(dt.UTC)
    headers = dip_pki.sign("POST", URL, BODY, at=now - dt.timedelta(seconds=30))
    assert _code(verifier, headers, now=now) == "signature.stale"
    with pytest.raises(DipEdgeError) as caught:
        SignatureVerifier.from_settings(load_settings(dip_pki.env(DIP_SIGNATURE_MODE="sometimes")))
    assert caught.value.code == "config.invalid" and "DIP_SIGNATURE_MODE" in str(caught.value)


def test_error_details_never_echo_header_values_or_key_material(dip_pki, verifier):
    headers = dip_pki.sign("POST", URL, BODY, private_key=dip_pki.other_signer_key)
    details = []
    for mutate in ({}, {"X-DIP-Signature": "%%"}, {"X-DIP-Content-Hash": "AAAA"}):
        try:
            verifier.verify("POST", URL, _lower({**headers, **mutate}), BODY)
        except DipEdgeError as exc:
            details.append(str(exc))
    text = "\n".join(details)
    key_pem = dip_pki.other_signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert_no_secrets(text, headers["X-DIP-Signature"], key_pem)
    assert not re.search(r"[A-Za-z0-9+/]{60,}", text)
