"""Identity rules (``shared/certs/identity.py``): every field, matching and config errors."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from shared.certs.identity import IdentityRules, Presented
from shared.problems import DipEdgeError


@pytest.fixture(scope="module")
def presented(dip_pki):
    return Presented.of(dip_pki.client.certificate, dip_pki.intermediate.certificate)


@pytest.fixture(scope="module")
def stranger(dip_pki):
    return Presented.of(dip_pki.stranger.certificate, dip_pki.intermediate.certificate)


def _rules(*docs) -> IdentityRules:
    return IdentityRules.parse(json.dumps(list(docs)), "DIP_CLIENT_IDENTITIES")


def _colons(hex_text: str) -> str:
    return ":".join(hex_text[i:i + 2] for i in range(0, len(hex_text), 2)).lower()


def test_every_field_matches_the_right_certificate_in_every_accepted_spelling(
        dip_pki, presented, stranger):
    cert = dip_pki.client.certificate
    issuer = dip_pki.intermediate.certificate
    sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()
    sha256 = cert.fingerprint(hashes.SHA256()).hex().upper()
    spki = hashes.Hash(hashes.SHA256())
    spki.update(cert.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    spki_digest = spki.finalize()
    subject = cert.subject.rfc4514_string()
    cases = {
        "thumbprint": [sha1, sha1.lower(), _colons(sha1), " ".join(_colons(sha1).split(":"))],
        "thumbprint_sha256": [sha256, _colons(sha256)],
        "serial_number": [f"{cert.serial_number:X}", f"00{cert.serial_number:x}",
                          f"0x{cert.serial_number:X}"],
        "common_name": ["DIP-Webhook-Client.Elexon.Example"],
        "subject": [subject, subject.replace(",", ", "), subject.lower().replace("cn=", "cn="),
                    *openssl_names(cert)],
        "dns_name": ["dip-webhook-client.elexon.example", "DIP-WEBHOOK-CLIENT.elexon.example."],
        "issuer_subject": [issuer.subject.rfc4514_string(), *openssl_names(issuer)],
        "issuer_thumbprint": [issuer.fingerprint(hashes.SHA1()).hex(),
                              _colons(issuer.fingerprint(hashes.SHA256()).hex())],
        "spki_sha256": [base64.b64encode(spki_digest).decode(), spki_digest.hex(),
                        "sha256/" + base64.b64encode(spki_digest).decode()],
    }
    for field, spellings in cases.items():
        for spelling in spellings:
            rules = _rules({field: spelling})
            assert rules.match(presented) is not None, (field, spelling)
            if field != "issuer_subject" and field != "issuer_thumbprint":
                assert rules.match(stranger) is None, (field, spelling)


def test_a_certificate_must_match_every_field_of_one_rule(dip_pki, presented):
    cn = "dip-webhook-client.elexon.example"
    both = _rules({"common_name": cn, "dns_name": "other.example"})
    assert both.match(presented) is None
    either = _rules({"dns_name": "other.example"}, {"name": "dip", "common_name": cn})
    assert either.match(presented).name == "dip"


def test_issuer_fields_need_the_issuer_from_the_validated_chain(dip_pki):
    leaf_only = Presented.of(dip_pki.client.certificate)
    rule = _rules({"issuer_thumbprint": dip_pki.intermediate.certificate.fingerprint(
        hashes.SHA1()).hex()})
    assert rule.match(leaf_only) is None


def test_mismatch_explanation_shows_the_certificates_value_beside_each_field(dip_pki,
                                                                           presented):
    rules = _rules({"name": "dip", "common_name": "dip-webhook-client.elexon.example",
                    "serial_number": "01"}, {"thumbprint": "00" * 20})
    text = rules.explain(presented)
    assert "rule 'dip'" in text and "2 identity rule(s)" in text
    serial = f"{dip_pki.client.certificate.serial_number:X}"
    assert f"serial_number (the certificate has '{serial}')" in text
    assert "common_name" not in text.split("differs in:")[1]  # that field matched


def openssl_names(cert) -> list[str]:
    """The name as openssl prints it (forward order, spaced, and the compat form)."""
    import tempfile

    from cryptography.hazmat.primitives.serialization import Encoding

    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        pem.write(cert.public_bytes(Encoding.PEM))
        pem.flush()
        names = []
        for options in ([], ["-nameopt", "compat"]):
            line = subprocess.run(["openssl", "x509", "-in", pem.name, "-noout", "-subject",
                                   *options], capture_output=True, text=True,
                                  check=True).stdout.strip()
            names += [line, line.removeprefix("subject=")]
    return names


def test_names_compare_whatever_order_they_are_written_in(dip_pki, presented, stranger):
    issuer = dip_pki.intermediate.certificate
    reversed_order = ",".join(reversed(issuer.subject.rfc4514_string().split(",")))
    for spelling in (reversed_order, *openssl_names(issuer)):
        assert _rules({"issuer_subject": spelling}).match(presented) is not None, spelling
    # Order-blind, not attribute-blind: a different value or a missing attribute differs.
    subject = dip_pki.client.certificate.subject.rfc4514_string()
    for other in (subject.replace("C=GB", "C=FR"), subject.split(",", 1)[1]):
        assert _rules({"subject": other}).match(presented) is None, other


@pytest.mark.parametrize(("doc", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"thumbprint": "AB"}', "must be a JSON array"),
    ("[]", "holds no rule"),
    ('["CN=x"]', "rule 1 must be a JSON object"),
    ('[{"thumbprnt": "AB"}]', "rule 1: unknown field 'thumbprnt'"),
    ('[{"name": "only a label"}]', "rule 1 has no field to match"),
    ('[{}]', "rule 1 has no field to match"),
    ('[{"common_name": "a"}, {"thumbprint": 12}]', "rule 2: thumbprint must be a non-empty string"),
    ('[{"common_name": ""}]', "common_name must be a non-empty string"),
    ('[{"thumbprint": "XYZ"}]', "thumbprint must be 40 hexadecimal digits"),
    ('[{"thumbprint_sha256": "ab"}]', "thumbprint_sha256 must be 64 hexadecimal digits"),
    ('[{"issuer_thumbprint": "ab"}]', "issuer_thumbprint must be 40 or 64 hexadecimal"),
    ('[{"serial_number": "12G"}]', "serial_number must be hexadecimal"),
    ('[{"spki_sha256": "bm90IGEgZGlnZXN0"}]', "spki_sha256 must be a SHA-256 digest"),
    ('[{"subject": "just words"}]', "subject is not a distinguished name"),
    ('[{"issuer_subject": "CN=a,=b"}]', "issuer_subject is not a distinguished name"),
    ("[" * 100_000, "nested too deeply"),  # json raised RecursionError
])
def test_bad_rules_are_config_errors_naming_the_setting_and_the_problem(doc, message):
    with pytest.raises(DipEdgeError) as caught:
        IdentityRules.parse(doc, "DIP_SIGNER_IDENTITIES")
    assert caught.value.code == "config.invalid"
    assert str(caught.value).startswith("DIP_SIGNER_IDENTITIES: ")
    assert message in str(caught.value)
