"""The x509-limbo suite's chain-structure cases through the webhook's certificate policy.

Every case runs through :class:`TrustPolicy` (the webhook's own path validation:
the same explicit validity check, ``cryptography`` verifier, extension policies and
profile checks), with usage ``server`` and the peer name ignored, at the case's
validation time. Name-matching cases (``webpki::san|cn|nc``, ``rfc5280::san|nc``), the
CVE corpus and CRL cases are out of scope: the webhook matches identities with its own
rules, not host names, and does no revocation.

Zero wrong accepts. The wrong rejects are listed in :data:`WRONG_REJECTS` with their
reasons; a listed case that starts passing fails the test, so the list stays true.
The ``denial-of-service`` cases run in a child process under a timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509

from shared.certs.roots import globalsign_roots
from shared.certs.trust import TrustPolicy
from tests.support.testdata import shared_testdata
from tests.support.words import assert_our_words

REPO = Path(__file__).resolve().parents[1]
LIMBO = shared_testdata("x509-limbo", "limbo.json")
OUT_OF_SCOPE = re.compile(r"^(webpki::(san|cn|nc)|rfc5280::(san|nc)|cve::)")
DOS_TIMEOUT_SECONDS = 60

WRONG_REJECTS = {
    "pathlen::validation-ignores-pathlen-in-leaf":
        "the leaf is a CA certificate (basicConstraints cA=TRUE); cryptography's Web PKI "
        "end-entity policy refuses CA certificates as leaves (CA/B Forum 7.1.2.7.8), and a "
        "DIP certificate is never a CA",
    "rfc5280::ca-as-leaf":
        "same as pathlen::validation-ignores-pathlen-in-leaf: a CA certificate as the leaf "
        "is refused by the Web PKI end-entity policy",
    "pathlen::self-issued-certs-pathlen":
        "chain through a self-issued intermediate (same subject and issuer, key rollover); "
        "cryptography 50's path builder does not build it ('signature does not match'), with "
        "or without our policy",
    "pathlen::max-chain-depth-1-self-issued":
        "same as pathlen::self-issued-certs-pathlen: a self-issued intermediate",
    "rfc5280::eku::ee-without-eku":
        "conflicts with webpki::eku::ee-without-eku, which expects a rejection; we follow the "
        "CA/B Forum (7.1.2.7.10: a subscriber certificate carries an EKU), as GlobalSign does",
}


@cache
def _cases() -> dict[str, dict]:
    doc = json.loads(LIMBO.read_text())
    return {case["id"]: case for case in doc["testcases"]}


def selected(dos: bool) -> list[str]:
    return [case_id for case_id, case in _cases().items()
            if not OUT_OF_SCOPE.match(case_id)
            and "has-crl" not in (case["features"] or [])
            and ("denial-of-service" in (case["features"] or [])) == dos]


def run_case(case_id: str) -> tuple[bool, str]:
    """(accepted, first error detail) of one case through the webhook's policy."""
    case = _cases()[case_id]

    def load(pem: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(pem.encode())

    try:
        anchors = [load(pem) for pem in case["trusted_certs"]]
        intermediates = [load(pem) for pem in case["untrusted_intermediates"]]
        leaf = load(case["peer_certificate"])
    except ValueError as exc:  # not even loadable: the webhook answers clientcert.malformed
        return False, f"unloadable: {exc}"
    when = case["validation_time"]
    at = dt.datetime.fromisoformat(when) if when else dt.datetime.now(dt.UTC)
    policy = TrustPolicy(anchors=anchors, intermediates=intermediates, usage="server",
                               max_chain_depth=case["max_chain_depth"])
    verdict = policy.check(leaf, at=at)
    return verdict.accepted, verdict.errors[0].detail if verdict.errors else ""


def _expect(case_id: str, accepted: bool, detail: str) -> None:
    if not detail.startswith("unloadable: "):
        assert_our_words(detail)  # every refusal is explained in our words
    expected = _cases()[case_id]["expected_result"] == "SUCCESS"
    if not expected:
        assert not accepted, f"wrong accept of {case_id}"
    elif case_id in WRONG_REJECTS:
        assert not accepted, f"{case_id} now passes: remove it from WRONG_REJECTS"
    else:
        assert accepted, f"wrong reject of {case_id}: {detail}"


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@pytest.mark.parametrize("case_id", selected(dos=False))
def test_limbo_case(case_id):
    _expect(case_id, *run_case(case_id))


def test_limbo_denial_of_service_cases_finish_under_a_timeout():
    ids = selected(dos=True)
    assert ids, "the suite has denial-of-service cases"
    code = ("import json, sys; from tests.test_x509_limbo import run_case; "
            "print(json.dumps({i: run_case(i) for i in sys.argv[1:]}))")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code, *ids], cwd=REPO,
                          capture_output=True, text=True, timeout=DOS_TIMEOUT_SECONDS,
                          check=True)
    results = json.loads(done.stdout)
    assert sorted(results) == sorted(ids)
    for case_id, (accepted, detail) in results.items():
        _expect(case_id, accepted, detail)


def test_wrong_rejects_are_real_limbo_successes():
    for case_id in WRONG_REJECTS:
        assert _cases()[case_id]["expected_result"] == "SUCCESS", case_id
        assert case_id in selected(dos=False)


def test_real_globalsign_atlas_chain_with_the_bundled_roots():
    """docs.python.org: a real GlobalSign Atlas R3 leaf (serverAuth and clientAuth) chains
    to a bundled root under every usage, and names an allow-listed AIA caIssuers URL."""
    from shared.certs.aia import AiaFetcher, ca_issuer_urls
    from shared.settings import load_settings

    case = _cases()["online::docs.python.org"]
    leaf = x509.load_pem_x509_certificate(case["peer_certificate"].encode())
    intermediates = [x509.load_pem_x509_certificate(p.encode())
                     for p in case["untrusted_intermediates"]]
    at = dt.datetime.fromisoformat(case["validation_time"])
    for usage in ("client", "server", "any"):
        verdict = TrustPolicy(anchors=globalsign_roots(), intermediates=intermediates,
                                    usage=usage).check(leaf, at=at)
        assert verdict.accepted, (usage, verdict.errors)
        assert verdict.chain[-1] in globalsign_roots()
    without_intermediate = TrustPolicy(anchors=globalsign_roots()).check(leaf, at=at)
    assert without_intermediate.errors[0].code == "clientcert.untrusted"
    default_hosts = load_settings({}).aia_allowed_hosts
    urls = ca_issuer_urls(leaf)
    assert urls and all(AiaFetcher(default_hosts).allowed(u) for u in urls)
