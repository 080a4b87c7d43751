"""The webhook lets no one in until the DIP's identity is configured (issue 17): the
fail-closed answer and the ``any`` opt-out through the HTTP function, and
``dip-edge identity-rule`` feeding ``check-cert`` and the webhook."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from shared.certs.devpki import CLIENT_AUTH, issue
from shared.certs.trust_config import _build_policy
from tests.support.dip_pki import CLIENT_CN, DIP_ORG, SIGNER_CN
from tests.support.functions import call_http
from tests.test_webhook_http import delivery, post, stored

DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DIP_EDGE, *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def health():
    response = call_http("health", "GET", "http://localhost/api/health")
    return response.status_code, json.loads(response.get_body())


def without_identities(dip_pki, **overrides: str) -> dict[str, str]:
    return dip_pki.env(**{"DIP_CLIENT_IDENTITIES": "", "DIP_SIGNER_IDENTITIES": "",
                          **overrides})


@pytest.fixture
def twin(dip_pki):
    """The DIP client's exact subject, from the same CA, with another key (a sibling a
    subject rule accepts by design and a key or thumbprint pin refuses)."""
    return issue(CLIENT_CN, organization=DIP_ORG, country="GB", issuer=dip_pki.intermediate,
                 dns_names=(CLIENT_CN,), ekus=(CLIENT_AUTH,), days=200)


@pytest.fixture
def pems(tmp_path, dip_pki, twin) -> dict[str, Path]:
    files = {"client": dip_pki.client.cert_pem() + dip_pki.intermediate.cert_pem(),
             "signer": dip_pki.signer.cert_pem(), "stranger": dip_pki.stranger.cert_pem(),
             "twin": twin.cert_pem(), "ca": dip_pki.intermediate.cert_pem(),
             "anchors": dip_pki.root.cert_pem(), "chain": dip_pki.intermediate.cert_pem(),
             "client.der": dip_pki.client.cert_der(), "garbage": b"\x30\x82 not DER"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


# --- fail closed, through the HTTP function ----------------------------------------------------
@pytest.mark.parametrize(("mode", "named"), [
    ("required", "DIP_CLIENT_IDENTITIES and DIP_SIGNER_IDENTITIES"),
    ("optional", "set DIP_CLIENT_IDENTITIES to"),
])
def test_no_identity_rules_refuse_the_dip_itself_with_503_and_store_nothing(
        app_env, dip_pki, tmp_path, caplog, mode, named):
    app_env(**without_identities(dip_pki, DIP_SIGNATURE_MODE=mode))
    caplog.set_level(logging.INFO, logger="dip_edge")
    status, doc, response = post(dip_pki, delivery("tx-1"))
    assert (status, doc["code"], doc["status"]) == (503, "config.invalid", 503)
    assert int(response.headers["Retry-After"]) >= 60  # the DIP keeps the messages, retries
    assert response.headers["Content-Type"] == "application/problem+json"
    assert named in doc["detail"] and "identity-rule" in doc["detail"]
    assert set(doc) == {"type", "title", "status", "detail", "code"}
    assert not (tmp_path / "state" / "inbox.sqlite3").exists()  # not even opened
    (record,) = [r.custom_dimensions for r in caplog.records if r.name == "dip_edge.webhook"]
    assert (record["status"], record["code"]) == (503, "config.invalid")
    code, report = health()
    assert code == 503 and report["status"] == "misconfigured"
    assert any(named in e for e in report["errors"])


def test_the_fail_closed_answer_comes_after_size_and_media_type_and_tells_a_stranger_nothing(
        app_env, dip_pki):
    app_env(**without_identities(dip_pki, WEBHOOK_MAX_BODY_BYTES="1024"))
    assert post(dip_pki, b"x" * 2048)[1]["code"] == "message.too_large"
    assert post(dip_pki, delivery("tx-1"), headers={"Content-Type": "text/plain"})[1][
        "code"] == "message.unsupported_media_type"
    # An unauthenticated caller gets the same answer as the DIP: settings' names, no more.
    status, doc, _ = post(dip_pki, b"not json", client=False, sign=False)
    assert (status, doc["code"]) == (503, "config.invalid")
    for secretish in ("BEGIN CERTIFICATE", "GlobalSign Test", CLIENT_CN, "/tmp"):
        assert secretish not in json.dumps(doc)


def test_signer_rules_alone_are_not_enough(app_env, dip_pki, tmp_path):
    app_env(**dip_pki.env(DIP_CLIENT_IDENTITIES=""))
    status, doc, _ = post(dip_pki, delivery("tx-1"))
    assert status == 503 and "set DIP_CLIENT_IDENTITIES to" in doc["detail"]
    assert "DIP_SIGNER_IDENTITIES" not in doc["detail"]
    assert not (tmp_path / "state" / "inbox.sqlite3").exists()


def test_signer_inherits_the_clients_rules_and_is_held_to_them(app_env, dip_pki, tmp_path):
    # Client rules set, signer rules not: the signing certificate must pass the client's
    # rules. Here they pin the client's subject, so the DIP's own signer is refused too.
    app_env(**dip_pki.env(DIP_SIGNER_IDENTITIES=""))
    status, doc, _ = post(dip_pki, delivery("tx-1"))
    assert (status, doc["code"]) == (403, "signature.untrusted_certificate")
    assert "[clientcert.identity_mismatch]" in doc["detail"]
    status, _, _ = post(dip_pki, delivery("tx-2"), sign_kwargs={"signer": dip_pki.client})
    assert status == 200
    assert stored(tmp_path / "state") == ["tx-2"]


def test_any_accepts_any_certificate_that_chains_and_warns_at_the_first_build(
        app_env, dip_pki, tmp_path, caplog):
    # Policies are built (and warn) once per process and configuration: start afresh, as a
    # new process would, whatever other tests built before.
    _build_policy.cache_clear()
    app_env(**without_identities(dip_pki, DIP_CLIENT_IDENTITIES="any"))
    caplog.set_level(logging.WARNING, logger="dip_edge")
    status, doc, _ = post(dip_pki, delivery("tx-1"), client=dip_pki.stranger,
                          sign_kwargs={"signer": dip_pki.stranger})
    assert status == 200, doc
    warnings = [r for r in caplog.records if r.name == "dip_edge.certs"]
    assert {r.levelno for r in warnings} == {logging.WARNING}
    assert any("DIP_CLIENT_IDENTITIES=any:" in r.getMessage() and "client certificate"
               in r.getMessage() for r in warnings)
    assert any("inherited" in r.getMessage() for r in warnings)  # the signer's too
    assert post(dip_pki, delivery("tx-x"), client=dip_pki.impostor)[1]["code"] == \
        "clientcert.untrusted"  # still only certificates that chain
    code, report = health()
    assert code == 200 and any("=any" in w for w in report["warnings"])
    assert stored(tmp_path / "state") == ["tx-1"]


# --- dip-edge identity-rule --------------------------------------------------------------------
@pytest.mark.parametrize(("pin", "fields"), [
    ("subject", {"name", "subject", "issuer_subject"}),
    ("spki", {"name", "spki_sha256"}),
    ("thumbprint", {"name", "thumbprint_sha256"}),
])
def test_identity_rule_feeds_check_cert_which_refuses_a_sibling(pems, pin, fields):
    printed = cli("identity-rule", pems["client"], "--pin", pin)
    assert printed.returncode == 0, printed.stderr
    (rule,) = json.loads(printed.stdout)
    assert set(rule) == fields and rule["name"] == f"{CLIENT_CN} ({pin})"
    trust = ["--anchors", pems["anchors"], "--chain", pems["chain"],
             "--identities", printed.stdout.strip()]
    accepted = cli("check-cert", pems["client"], *trust, "--json")
    assert accepted.returncode == 0, accepted.stdout
    siblings = ["stranger"] + ([] if pin == "subject" else ["twin"])
    for sibling in siblings:
        refused = cli("check-cert", pems[sibling], *trust, "--json")
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["errors"][0]["code"] == "clientcert.identity_mismatch"
    if pin == "subject":  # the same subject from the same CA is the same identity, renewed
        assert cli("check-cert", pems["twin"], *trust).returncode == 0


def test_identity_rule_reads_der_and_names_the_signer(pems):
    der = cli("identity-rule", pems["client.der"])
    pem = cli("identity-rule", pems["client"])
    assert der.returncode == 0 and der.stdout == pem.stdout
    signer = json.loads(cli("identity-rule", pems["signer"]).stdout)[0]
    assert signer["subject"].startswith(f"CN={SIGNER_CN},")


@pytest.mark.parametrize(("argv", "message"), [
    (["missing"], "no such file"),
    (["x" * 5000], "no such file"),  # too long a name to stat: it raised OSError
    (["garbage"], "not a readable"),
    (["ca"], "is a CA certificate"),
    (["client", "--pin", "serial"], "invalid choice"),
])
def test_identity_rule_usage_errors(pems, argv, message):
    result = cli("identity-rule", pems.get(argv[0], argv[0]), *argv[1:])
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
