"""The PFX checker (``check_pfx``) on generated PFX files: every catalogue code, the
facts, the password cases, leaf selection, issuer recognition and the policy."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.certs.facts import describe, to_passwordless_pfx
from shared.certs.pfx_check import PfxPolicy, check_pfx
from shared.problems import CATALOGUE, DipEdgeError
from shared.settings import load_settings
from tests.support.leaks import assert_no_secrets
from tests.support.pfx_factory import (
    FIXTURE_FOR_CODE,
    PASSWORD,
    PfxFactory,
    encryption,
    join_pfx,
    to_pfx,
)

POLICY = PfxPolicy()


@pytest.fixture(scope="module")
def factory() -> PfxFactory:
    return PfxFactory()


def check(pfx, policy=POLICY, password=...):
    return check_pfx(pfx.data, pfx.password if password is ... else password, policy)


def codes(findings) -> list[str]:
    return [f.code for f in findings]




@pytest.mark.parametrize(("code", "kind"), sorted(FIXTURE_FOR_CODE.items()))
def test_each_code_has_a_fixture_that_produces_it(factory, code, kind):
    pfx = getattr(factory, kind)
    report = check(pfx, password=None if code == "pfx.wrong_password" else ...)
    assert code in codes(report.errors)
    assert not report.valid
    assert code in CATALOGUE


def test_the_table_covers_every_pfx_and_cert_code():
    wanted = {c for c in CATALOGUE if c.split(".")[0] in {"pfx", "cert"}}
    covered = set(FIXTURE_FOR_CODE) | {"pfx.missing", "pfx.too_large", "pfx.not_pkcs12",
                                  "cert.expiring_soon",  # tested below / in test_pfx_hostile
                                  # warnings on files from openssl and keytool:
                                  "pfx.password_unused", "pfx.legacy_encryption"}
    assert wanted == covered


@pytest.mark.parametrize("kind", ["rsa_legacy", "ec_p384_legacy"])
def test_legacy_3des_pfx_files_are_valid_with_a_legacy_encryption_warning(factory, kind):
    report = check(getattr(factory, kind))
    assert report.valid and codes(report.warnings) == ["pfx.legacy_encryption"]
    assert "3DES (pbeWithSHAAnd3-KeyTripleDES-CBC), 2,048 iteration(s)" in \
        report.warnings[0].detail
    assert report.to_dict()["pkcs12"]["mac"] == {"algorithm": "HMAC-SHA-1",
                                                 "iterations": 2048, "legacy": False}


def test_a_password_given_for_a_passwordless_pfx_is_a_warning(factory):
    report = check(factory.rsa_passwordless, password=PASSWORD)
    assert report.valid and codes(report.warnings) == ["pfx.password_unused"]
    assert_no_secrets(str(report.to_dict()), PASSWORD.decode())


@pytest.mark.parametrize("kind", ["rsa_aes", "rsa_passwordless", "rsa_no_chain", "ec_p256",
                                  "no_eku"])
def test_good_pfx_files_are_valid_without_warnings(factory, kind):
    report = check(getattr(factory, kind))
    assert report.errors == () and report.warnings == ()
    assert report.valid
    assert report.leaf == getattr(factory, kind).issued.certificate
    assert report.private_key is not None


def test_expiring_soon_is_a_warning_not_an_error(factory):
    report = check(factory.expiring_soon)
    assert report.valid
    assert codes(report.warnings) == ["cert.expiring_soon"]
    assert "in 9 day(s)" in report.warnings[0].detail or "in 10 day(s)" in report.warnings[0].detail


def test_expiry_threshold_comes_from_the_policy(factory):
    assert check(factory.rsa_aes).warnings == ()
    report = check(factory.rsa_aes, PfxPolicy(expiry_warning_days=400))
    assert codes(report.warnings) == ["cert.expiring_soon"]


def test_time_can_be_fixed(factory):
    later = factory.good.certificate.not_valid_after_utc + dt.timedelta(days=1)
    report = check_pfx(factory.rsa_aes.data, PASSWORD, POLICY, now=later)
    assert codes(report.errors) == ["cert.expired"]
    assert report.certificate.days_to_expiry == -1


def test_missing_and_too_large(factory):
    assert codes(check_pfx(None, None, POLICY).errors) == ["pfx.missing"]
    assert codes(check_pfx(b"", PASSWORD, POLICY).errors) == ["pfx.missing"]
    small = PfxPolicy(max_bytes=len(factory.rsa_aes.data) - 1)
    report = check(factory.rsa_aes, small)
    assert codes(report.errors) == ["pfx.too_large"]
    assert f"larger than {small.max_bytes:,} bytes" in report.errors[0].detail


class TestPasswords:
    def test_needed_but_not_given(self, factory):
        report = check(factory.rsa_aes, password=None)
        assert codes(report.errors) == ["pfx.wrong_password"]
        assert "none was given" in report.errors[0].detail
        assert "a password is needed" in report.errors[0].detail  # DESIGN.md's wording

    @pytest.mark.parametrize("kind", ["rsa_aes", "rsa_legacy"])
    def test_given_but_wrong(self, factory, kind):
        report = check(getattr(factory, kind), password=b"not the password")
        assert codes(report.errors) == ["pfx.wrong_password"]
        assert "password is wrong" in report.errors[0].detail

    def test_a_password_for_a_passwordless_file_is_harmless(self, factory):
        assert check(factory.rsa_passwordless, password=b"anything").valid

    def test_empty_password_file_opens_without_one(self, factory, tmp_path):
        # cryptography refuses an empty password; openssl (as Windows tools do) writes one.
        (tmp_path / "leaf.pem").write_bytes(factory.good.key_pem() + factory.good.cert_pem())
        subprocess.run(["openssl", "pkcs12", "-export", "-in", "leaf.pem", "-passout", "pass:",
                        "-out", "empty.pfx"], cwd=tmp_path, check=True, capture_output=True)
        data = (tmp_path / "empty.pfx").read_bytes()
        assert check_pfx(data, None, POLICY).valid


class TestLeafSelection:
    def test_the_leaf_is_the_certificate_of_the_key_wherever_it_sits(self, factory):
        good = factory.good
        data = pkcs12.serialize_key_and_certificates(
            b"x", good.private_key, None, [factory.issuing.certificate, good.certificate],
            encryption(PASSWORD))
        report = check_pfx(data, PASSWORD, POLICY)
        assert report.valid
        assert report.leaf == good.certificate
        assert report.chain_certificates == (factory.issuing.certificate,)
        assert report.certificate.common_name == "acme-atlas-access"

    def test_key_mismatch_still_describes_the_certificate(self, factory):
        report = check(factory.key_mismatch)
        assert codes(report.errors) == ["pfx.key_mismatch"]
        assert report.certificate.common_name == "acme-atlas-access"
        assert report.private_key is None

    @pytest.mark.parametrize("password", [PASSWORD, None])
    def test_several_keys_are_reported_not_silently_dropped(self, factory, password):
        # cryptography (like OpenSSL's PKCS12_parse) returns only the first key.
        data = join_pfx(to_pfx(factory.good, password, chain=False).data,
                        to_pfx(factory.leaf("acme-other"), password, chain=False).data,
                        password or b"") if password else _join_plain(factory)
        report = check_pfx(data, password, POLICY)
        assert codes(report.errors) == ["pfx.several_keys"]
        assert "2 private keys" in report.errors[0].detail
        assert report.certificate.common_name == "acme-atlas-access"
        assert report.private_key is None  # nothing to log in with or store

    def test_certificate_checks_wait_until_the_file_is_right(self, factory):
        expired = factory.expired.issued
        data = pkcs12.serialize_key_and_certificates(b"x", None, None, [expired.certificate],
                                                     encryption(PASSWORD))
        assert codes(check_pfx(data, PASSWORD, POLICY).errors) == ["pfx.no_private_key"]


class TestIssuer:
    def test_globalsign_by_name_with_and_without_the_chain(self, factory):
        assert check(factory.rsa_aes).valid
        assert check(factory.rsa_no_chain).valid

    def test_a_private_ca_needs_trust(self, factory):
        report = check(factory.trusted_private)
        assert codes(report.errors) == ["cert.untrusted_issuer"]
        assert "Acme Test Root" in report.errors[0].detail
        trusting = POLICY.trusting([factory.private_root.certificate])
        assert check(factory.trusted_private, trusting).valid

    def test_trusting_the_issuing_ca_directly(self, factory):
        trusting = POLICY.trusting([factory.private_issuing.certificate])
        assert check(factory.trusted_private, trusting).valid

    def test_a_lookalike_trusted_name_is_not_enough(self, factory):
        impostor_issued = factory.leaf("acme-impostor", issuer=factory.private_issuing)
        # Trust a *different* CA carrying the same name as the real issuer.
        from shared.certs.devpki import issue, new_key
        twin = issue("Acme Test Issuing CA", organization="Acme Energy Test", ca=True,
                     ekus=None, key=new_key("p256"))
        data = pkcs12.serialize_key_and_certificates(
            b"x", impostor_issued.private_key, impostor_issued.certificate, None,
            encryption(PASSWORD))
        report = check_pfx(data, PASSWORD, POLICY.trusting([twin.certificate]))
        assert codes(report.errors) == ["cert.untrusted_issuer"]
        assert "does not verify" in report.errors[0].detail

    def test_a_carried_chain_must_really_sign(self, factory):
        report = check(factory.wrong_chain)
        assert codes(report.errors) == ["cert.untrusted_issuer"]
        assert "did not sign" in report.errors[0].detail

    def test_self_signed_is_untrusted_even_with_globalsign_in_the_name(self, factory):
        report = check(factory.self_signed)
        assert "self-signed" in report.errors[0].detail
        assert report.certificate.self_signed

    def test_a_chain_ending_at_an_unknown_root(self, factory):
        leaf = factory.trusted_private.issued
        data = pkcs12.serialize_key_and_certificates(
            b"x", leaf.private_key, leaf.certificate,
            [factory.private_issuing.certificate, factory.private_root.certificate],
            encryption(PASSWORD))
        report = check_pfx(data, PASSWORD, POLICY)
        assert codes(report.errors) == ["cert.untrusted_issuer"]
        assert "self-signed root" in report.errors[0].detail


    def test_a_signature_algorithm_nothing_here_verifies_is_named(self, factory):
        """ecdsa-with-SHA256 (1.2.840.10045.4.3.2, the issuing CA's) renumbered to
        ...4.3.127, in the signed part and the outer signature alike: nobody can check who
        signed it."""
        leaf = factory.leaf("acme-odd-algorithm")
        der = leaf.certificate.public_bytes(serialization.Encoding.DER)
        ecdsa_sha256 = bytes.fromhex("2a8648ce3d040302")
        assert der.count(ecdsa_sha256) == 2
        odd = x509.load_der_x509_certificate(
            der.replace(ecdsa_sha256, ecdsa_sha256[:-1] + b"\x7f"))
        data = pkcs12.serialize_key_and_certificates(
            b"x", leaf.private_key, odd, [factory.issuing.certificate], encryption(PASSWORD))
        report = check_pfx(data, PASSWORD, POLICY)
        untrusted = [f for f in report.errors if f.code == "cert.untrusted_issuer"]
        assert len(untrusted) == 1, report.errors
        assert "cannot be verified here" in untrusted[0].detail
        assert "1.2.840.10045.4.3.127" in untrusted[0].detail

def test_facts_of_the_leaf(factory):
    report = check(factory.rsa_aes)
    leaf = factory.good.certificate
    facts = report.certificate
    assert facts.thumbprint_sha1 == leaf.fingerprint(hashes.SHA1()).hex().upper()
    assert facts.thumbprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex().upper()
    assert facts.serial_number == f"{leaf.serial_number:X}"
    assert (facts.key_type, facts.key_size, facts.curve) == ("RSA", 2048, None)
    assert facts.signature_hash == "sha256"
    assert facts.extended_key_usages == ("clientAuth",)
    assert "digitalSignature" in facts.key_usage
    assert facts.organization == "Acme Energy Ltd"
    assert facts.dns_names == ("acme-atlas-access.invalid",)
    assert facts.issuer == factory.issuing.certificate.subject.rfc4514_string()
    assert not facts.is_ca and not facts.self_signed
    assert 360 <= facts.days_to_expiry <= 365
    assert [c.common_name for c in report.chain] == ["Test GlobalSign Atlas R3 Client CA 2026"]
    ec = describe(factory.ec_p256.issued.certificate)
    assert (ec.key_type, ec.key_size, ec.curve) == ("EC", 256, "P-256")
    document = report.to_dict()
    assert document["certificate"]["thumbprintSha1"] == facts.thumbprint_sha1
    assert document["valid"] is True


def test_passwordless_export_round_trips(factory):
    report = check(factory.rsa_legacy)
    data = to_passwordless_pfx(report)
    loaded = pkcs12.load_key_and_certificates(data, None)
    assert loaded[1] == factory.good.certificate
    assert loaded[2] == [factory.issuing.certificate]
    again = check_pfx(data, None, POLICY)
    assert again.valid and again.leaf == report.leaf
    with pytest.raises(ValueError):
        to_passwordless_pfx(check(factory.key_only))


class TestPolicyFromSettings:
    def test_defaults(self):
        policy = PfxPolicy.from_settings(load_settings({}))
        assert policy == PfxPolicy()

    def test_trusted_issuers_from_a_path_and_inline(self, factory, tmp_path):
        pem = factory.private_root.cert_pem()
        path = tmp_path / "trust.pem"
        path.write_bytes(pem)
        for value in (str(path), pem.decode()):
            policy = PfxPolicy.from_settings(load_settings(
                {"PFX_TRUSTED_ISSUERS": value, "EXPIRY_WARNING_DAYS": "45"}))
            assert policy.trusted_issuers == (factory.private_root.certificate,)
            assert policy.expiry_warning_days == 45
            assert check(factory.trusted_private, policy).valid

    @pytest.mark.parametrize("env", [
        {"PFX_TRUSTED_ISSUERS": "/no/such/file.pem"},
        {"PFX_TRUSTED_ISSUERS": "-----BEGIN CERTIFICATE-----\nnot base64\n"
                                "-----END CERTIFICATE-----"},
        {"EXPIRY_WARNING_DAYS": "soon"},
    ])
    def test_bad_settings_are_config_errors(self, env):
        with pytest.raises(DipEdgeError) as caught:
            PfxPolicy.from_settings(load_settings(env))
        assert caught.value.code == "config.invalid"


def _join_plain(factory) -> bytes:
    """Two password-less files joined: plain key bags. Their MAC uses the empty password."""
    return join_pfx(to_pfx(factory.good, None, chain=False).data,
                    to_pfx(factory.leaf("acme-other"), None, chain=False).data, b"")
