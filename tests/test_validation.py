"""The one credential-validation use case: Atlas is asked only when every check passed."""

from __future__ import annotations

import pytest

from shared.certs.pfx_check import PfxPolicy, check_pfx
from shared.certs.report import PfxReport
from shared.problems import API_KEY_MISSING, CERT_EXPIRED
from shared.validation import NotPassed, passed_account, validate_credentials
from tests.support.pfx_factory import PASSWORD, PfxFactory


def never() -> None:
    raise AssertionError("Atlas must not be asked")


def test_an_account_comes_only_from_a_pfx_that_passed():
    failed = PfxReport(errors=(CERT_EXPIRED("expired"),), warnings=())
    with pytest.raises(NotPassed):
        passed_account(failed, "key", "secret")
    passed = check_pfx(PfxFactory().rsa_aes.data, PASSWORD, PfxPolicy())
    account = passed_account(passed, "key", "secret")
    assert account.certificate == passed.leaf and account.chain == passed.chain_certificates
    assert "secret" not in repr(account) and "key=" not in repr(account)


@pytest.mark.parametrize("findings, key", [((API_KEY_MISSING("none"),), "k"), ((), None),
                                           ((), "")])
def test_atlas_is_not_asked_after_a_finding_or_without_a_key(findings, key):
    report = check_pfx(PfxFactory().rsa_aes.data, PASSWORD, PfxPolicy())
    verdict = validate_credentials(report, key, "secret", never, findings=findings)
    assert verdict.proof is None
    assert [f.code for f in verdict.errors] == [f.code for f in findings]


def test_a_pfx_that_fails_is_not_proven():
    failed = PfxReport(errors=(CERT_EXPIRED("expired"),), warnings=())
    verdict = validate_credentials(failed, "key", "secret", never)
    assert (verdict.valid, verdict.proof, [f.code for f in verdict.errors]) == (
        False, None, ["cert.expired"])
