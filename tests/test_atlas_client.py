"""The Atlas client and proof against the fake Atlas over real mutual TLS."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from shared.atlas.client import LOGIN_CONTENT_TYPE, AtlasClient, AtlasConnection
from shared.atlas.proof import Account, prove_credentials
from shared.certs.devpki import new_key
from shared.problems import DipEdgeError
from tests.support.leaks import assert_no_secrets

KEY, SECRET = "a1b2c3d4e5f60718", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
OTHER_KEY, OTHER_SECRET = "9988776655443322", "1111222233334444555566667777888899990000"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def accounts(atlas_server):
    """Two accounts, each with its own linked client certificate."""
    mine = atlas_server.new_client_certificate("acme-atlas-access", key=new_key("rsa2048"))
    other = atlas_server.new_client_certificate("other-atlas-access", key=new_key("p256"))
    atlas_server.add_account(KEY, SECRET, mine)
    atlas_server.add_account(OTHER_KEY, OTHER_SECRET, other)
    return mine, other


@pytest.fixture
def connection(fake_atlas):
    return AtlasConnection(fake_atlas.base_url, str(fake_atlas.ca_path), timeout=2.0,
                           max_retries=2, backoff=0.01)


def prove(connection, issued, key=KEY, secret=SECRET):
    return prove_credentials(Account(key, secret, issued.certificate, issued.private_key,
                                     tuple(issued.chain())), connection)


def only_error(proof):
    assert len(proof.errors) == 1, proof.errors
    return proof.errors[0]


def client(connection, issued, waits=None, clock=None, key=KEY, secret=SECRET):
    kwargs = {}
    if waits is not None:
        kwargs["sleep"] = waits.append
    if clock is not None:
        kwargs["clock"] = clock
    return AtlasClient(connection, api_key=key, api_secret=secret,
                       certificate=issued.certificate, private_key=issued.private_key,
                       chain=issued.chain(), **kwargs)


# -- proven ------------------------------------------------------------------------------


def test_proof_logs_in_over_mtls_and_summarises_the_account(fake_atlas, connection, accounts):
    mine, _ = accounts
    proof = prove(connection, mine)
    assert proof.proven and not proof.unavailable and proof.warnings == ()
    account = proof.account
    assert account["validationPolicy"] == {
        "keyType": "RSA", "keyLengths": [2048, 3072, 4096],
        "extendedKeyUsages": [{"oid": "1.3.6.1.5.5.7.3.2", "name": "clientAuth"}],
        "validity": {"minSeconds": 60, "maxSeconds": 7776000}}
    assert account["issuanceQuota"] == fake_atlas.accounts[KEY].quota
    assert account["trustChain"] == [fake_atlas.issuing_ca.certificate.subject.rfc4514_string(),
                                     fake_atlas.root.certificate.subject.rfc4514_string()]
    login = fake_atlas.requests[0]
    assert (login.method, login.path, login.content_type) == ("POST", "/login",
                                                              LOGIN_CONTENT_TYPE)
    # The certificate the server saw is the account's, and one token served all calls.
    assert {r.client_certificate for r in fake_atlas.requests} == {
        fake_atlas.accounts[KEY].certificates.copy().pop()}
    assert [r.path for r in fake_atlas.requests] == [
        "/login", "/validationpolicy", "/quotas/issuance", "/trustchain"]
    assert proof.to_dict()["proven"] is True


def test_ec_client_certificate_works_too(fake_atlas, connection, accounts):
    _, other = accounts
    assert prove(connection, other, OTHER_KEY, OTHER_SECRET).proven


def test_no_key_material_reaches_the_temp_directory(fake_atlas, connection, accounts,
                                                    monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert prove(connection, accounts[0]).proven
    assert list(tmp_path.iterdir()) == []


# -- refused credentials -------------------------------------------------------------------


def test_wrong_secret_is_invalid_credentials(fake_atlas, connection, accounts):
    error = only_error(prove(connection, accounts[0], secret="0" * 40))
    assert error.code == "globalsign.invalid_credentials"
    assert fake_atlas.logins() == 1  # a 401 from /login is final: no retry


def test_valid_certificate_of_another_account_is_invalid_credentials(fake_atlas, connection,
                                                                      accounts):
    _, other = accounts
    assert only_error(prove(connection, other)).code == "globalsign.invalid_credentials"


def test_certificate_from_an_unknown_ca_fails_the_handshake(fake_atlas, connection):
    foreign = fake_atlas.foreign_client_certificate()
    error = only_error(prove(connection, foreign))
    assert error.code == "globalsign.mtls_rejected"
    assert fake_atlas.wait_for_handshake_failures() >= 1 and fake_atlas.requests == []


def test_http_mode_unlinked_certificate_gets_401_invalid_credentials(fake_atlas, connection):
    fake_atlas.mtls_mode = "http"
    stranger = fake_atlas.new_client_certificate("stranger", key=new_key("p256"))
    assert only_error(prove(connection, stranger)).code == "globalsign.invalid_credentials"
    assert fake_atlas.handshake_failures == 0


def test_http_mode_missing_certificate_gets_401_problem(fake_atlas):
    import httpx

    fake_atlas.mtls_mode = "http"
    trust = ssl.create_default_context(cafile=str(fake_atlas.ca_path))
    response = httpx.post(f"{fake_atlas.base_url}/login", verify=trust,
                          content=b'{"api_key":"%s","api_secret":"%s"}' % (KEY.encode(),
                                                                           SECRET.encode()),
                          headers={"Content-Type": LOGIN_CONTENT_TYPE})
    assert response.status_code == 401
    assert response.json() == {"description": "Unauthorized"}
    assert response.headers["content-type"] == "application/problem+json;charset=utf-8"


def test_proxy_mode_html_400_is_mtls_rejected(fake_atlas, connection):
    fake_atlas.mtls_mode = "proxy"
    stranger = fake_atlas.new_client_certificate("stranger", key=new_key("p256"))
    error = only_error(prove(connection, stranger))
    assert error.code == "globalsign.mtls_rejected"
    assert "non-JSON 400" in error.detail


@pytest.mark.parametrize("status", [401, 403])
def test_non_json_refusal_from_a_front_end_is_mtls_rejected(fake_atlas, connection, accounts,
                                                            status):
    fake_atlas.inject(status, path="/login", body=b"Forbidden", content_type="text/plain")
    assert only_error(prove(connection, accounts[0])).code == "globalsign.mtls_rejected"


def test_connection_reset_is_mtls_rejected(fake_atlas, connection, accounts):
    fake_atlas.reset_connection(path="/login")
    assert only_error(prove(connection, accounts[0])).code == "globalsign.mtls_rejected"


# -- tokens --------------------------------------------------------------------------------


def test_expired_token_triggers_one_relogin(fake_atlas, connection, accounts):
    with client(connection, accounts[0]) as atlas:
        atlas.login()
        fake_atlas.expire_tokens()
        assert atlas.get_json("/quotas/issuance") == {"value": fake_atlas.accounts[KEY].quota}
        assert atlas.logins == 2
    statuses = [r.path for r in fake_atlas.requests]
    assert statuses == ["/login", "/quotas/issuance", "/login", "/quotas/issuance"]


def test_token_is_reused_within_its_life_and_renewed_before_it_ends(fake_atlas, connection,
                                                                    accounts):
    now = [1000.0]
    with client(connection, accounts[0], clock=lambda: now[0]) as atlas:
        atlas.get_json("/validationpolicy")
        now[0] += 300
        atlas.get_json("/quotas/issuance")
        assert atlas.logins == 1
        now[0] += 241  # 541 s after login: within a minute of the 10-minute life
        atlas.get_json("/trustchain")
        assert atlas.logins == 2


def test_401_after_relogin_is_unexpected(fake_atlas, connection, accounts):
    fake_atlas.inject(401, path="/validationpolicy", times=2, description="Token is expired")
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unexpected_response"
    assert "401" in error.detail and "Token is expired" in error.detail
    assert fake_atlas.logins() == 2


# -- retries and outages ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["busy", "rate_limit", "in_progress", "proxy_502"])
def test_transient_answers_are_retried(fake_atlas, connection, accounts, fault):
    getattr(fake_atlas, fault)(times=2, path="/validationpolicy")
    assert prove(connection, accounts[0]).proven
    assert [r.path for r in fake_atlas.requests].count("/validationpolicy") == 3


@pytest.mark.parametrize(("fault", "said"), [
    ("busy", '503 "Service busy, please retry later"'),
    ("rate_limit", '429 "Rate Limit Reached"'),
    ("in_progress", '202 "Operation in progress"'),
    ("proxy_502", "502."),
])
def test_persistent_faults_are_unavailable_after_bounded_retries(fake_atlas, connection,
                                                                 accounts, fault, said):
    getattr(fake_atlas, fault)(times=10)
    proof = prove(connection, accounts[0])
    error = only_error(proof)
    assert error.code == "globalsign.unavailable" and proof.unavailable
    assert said in error.detail and "after 3 tries" in error.detail
    assert len(fake_atlas.requests) == 3


def test_retry_after_is_honoured_capped_and_reported(fake_atlas, connection, accounts):
    fake_atlas.rate_limit(times=1, path="/login", retry_after=1)
    fake_atlas.busy(times=5, path="/login", retry_after=3600)
    waits: list[float] = []
    with client(connection, accounts[0], waits) as atlas, pytest.raises(DipEdgeError) as caught:
        atlas.login()
    assert waits == [1, connection.timeout]  # Retry-After 3600 capped at the timeout
    assert caught.value.code == "globalsign.unavailable"
    assert caught.value.retry_after == 3600


def test_retry_after_as_http_date(fake_atlas, connection, accounts):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    fake_atlas.inject(503, path="/login", times=5, description="Service busy",
                      headers={"Retry-After": when})
    waits: list[float] = []
    with client(connection, accounts[0], waits) as atlas, pytest.raises(DipEdgeError) as caught:
        atlas.login()
    assert waits == [connection.timeout] * 2
    assert 80 <= caught.value.retry_after <= 90


def test_backoff_doubles_without_retry_after(fake_atlas, connection, accounts):
    fake_atlas.busy(times=5)
    waits: list[float] = []
    with client(connection, accounts[0], waits) as atlas, pytest.raises(DipEdgeError):
        atlas.login()
    assert waits == [0.01, 0.02]


def test_slow_answer_times_out_then_succeeds_on_retry(fake_atlas, connection, accounts):
    quick = AtlasConnection(connection.base_url, connection.ca_bundle, timeout=0.3,
                            max_retries=1, backoff=0.0)
    fake_atlas.slow(1.0, path="/validationpolicy")
    assert prove(quick, accounts[0]).proven


def test_slow_answers_are_unavailable(fake_atlas, connection, accounts):
    quick = AtlasConnection(connection.base_url, connection.ca_bundle, timeout=0.3,
                            max_retries=0, backoff=0.0)
    fake_atlas.slow(1.0, path="/login")
    error = only_error(prove(quick, accounts[0]))
    assert error.code == "globalsign.unavailable"
    assert "did not answer within 0.3 s" in error.detail


def test_nothing_listening_is_unavailable(connection, accounts):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = AtlasConnection(f"https://127.0.0.1:{port}/v2", connection.ca_bundle, 1.0, 1, 0.0)
    error = only_error(prove(closed, accounts[0]))
    assert error.code == "globalsign.unavailable" and "refused" in error.detail


def test_untrusted_server_certificate_is_unavailable_without_retrying(fake_atlas, connection,
                                                                      accounts):
    wrong_ca = AtlasConnection(connection.base_url, fake_atlas.foreign_client_certificate()
                               .issuer.cert_pem().decode(), 1.0, 3, 0.0)
    error = only_error(prove(wrong_ca, accounts[0]))
    assert error.code == "globalsign.unavailable"
    assert "server certificate could not be verified" in error.detail
    assert fake_atlas.wait_for_handshake_failures() == 1


def test_unreadable_ca_bundle_is_a_configuration_error(connection, accounts):
    bad = AtlasConnection(connection.base_url, "-----BEGIN CERTIFICATE-----\nnope\n", 1, 0, 0)
    with pytest.raises(DipEdgeError) as caught:
        prove(bad, accounts[0])
    assert caught.value.code == "config.invalid"


# -- unexpected answers ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "path", "description"), [
    (404, "/validationpolicy", "Not Found"),
    (422, "/login", "Invalid login request"),
    (415, "/login", "Bad Content-Type"),
    (409, "/validationpolicy", "Conflict"),
])
def test_other_statuses_are_unexpected_with_status_and_description(
        fake_atlas, connection, accounts, status, path, description):
    fake_atlas.inject(status, path=path, description=description)
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unexpected_response"
    assert f"answered {status} to {path}" in error.detail and description in error.detail


def test_success_without_json_is_unexpected(fake_atlas, connection, accounts):
    fake_atlas.inject(200, path="/login", body=b"<html>ok</html>", content_type="text/html")
    assert only_error(prove(connection, accounts[0])).code == "globalsign.unexpected_response"


def test_login_without_token_is_unexpected(fake_atlas, connection, accounts):
    fake_atlas.inject(200, path="/login", body=b'{"token": "x"}', content_type="application/json")
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unexpected_response" and "no access token" in error.detail


def test_quota_and_trust_chain_failures_after_login_are_warnings(fake_atlas, connection,
                                                                accounts):
    fake_atlas.inject(404, path="/quotas/issuance", description="Not Found")
    fake_atlas.inject(200, path="/trustchain", body=b'["not a PEM"]',
                      content_type="application/json")
    proof = prove(connection, accounts[0])
    assert proof.proven
    assert [w.code for w in proof.warnings] == ["globalsign.unexpected_response"] * 2
    assert proof.account["issuanceQuota"] is None and proof.account["trustChain"] == []


# -- secrets ---------------------------------------------------------------------------------


def test_secret_and_token_never_in_logs_errors_or_reprs(fake_atlas, connection, accounts,
                                                        caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with client(connection, accounts[0]) as atlas:
        atlas.get_json("/validationpolicy")
        texts.append(repr(atlas))
        texts.append(repr(atlas.__dict__.get("connection")))
    fake_atlas.busy(times=10)
    proof = prove(connection, accounts[0], secret=SECRET)
    texts.append(repr(proof))
    fake_atlas.reset()
    texts.append(repr(prove(connection, accounts[0], secret="f" * 40)))
    tokens = list(fake_atlas.tokens) or [r.authorization for r in fake_atlas.requests
                                         if r.authorization]
    captured = "\n".join(texts) + caplog.text
    assert "HTTP Request" in caplog.text  # httpx did log at DEBUG/INFO: the check means something
    assert_no_secrets(captured, SECRET, "f" * 40, *[t.removeprefix("Bearer ") for t in tokens])


# -- online proof through the CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def access_pfx(accounts, tmp_path_factory):
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    mine, _ = accounts
    path = tmp_path_factory.mktemp("cli") / "access.pfx"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"acme", mine.private_key, mine.certificate, mine.chain()[:1],
        BestAvailableEncryption(b"cli-pfx-password")))
    return path


def dip_edge(fake_atlas, access_pfx, secret, *extra):
    env = {**os.environ, "K": KEY, "S": secret, "P": "cli-pfx-password",
           "PFX_TRUSTED_ISSUERS": str(fake_atlas.mtls_ca_path), "ATLAS_TIMEOUT_SECONDS": "2",
           "ATLAS_MAX_RETRIES": "1", "ATLAS_RETRY_BACKOFF_SECONDS": "0"}
    command = [sys.executable, "-m", "shared", "check-pfx", str(access_pfx),
               "--password-env", "P", "--api-key-env", "K", "--api-secret-env", "S",
               "--atlas-url", fake_atlas.base_url, "--atlas-ca", str(fake_atlas.ca_path),
               "--json", *extra]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("secret", "fault", "code", "exit_code"), [
    (SECRET, None, None, 0),
    ("e" * 40, None, "globalsign.invalid_credentials", 1),
    (SECRET, "busy", "globalsign.unavailable", 3),
])
def test_check_pfx_online_proof_exit_codes(fake_atlas, access_pfx, secret, fault, code,
                                           exit_code):
    import json

    if not (ROOT / "shared" / "cli" / "check_pfx.py").exists():
        pytest.skip("the check-pfx command has not landed yet")
    if fault:
        getattr(fake_atlas, fault)(times=10)
    done = dip_edge(fake_atlas, access_pfx, secret)
    assert done.returncode == exit_code, done.stderr
    document = json.loads(done.stdout)
    assert [e["code"] for e in document["errors"]] == ([code] if code else [])
    assert document["globalsign"]["proven"] is (code is None)
    assert fake_atlas.logins() >= 1
    assert_no_secrets(done.stdout + done.stderr, secret, "cli-pfx-password")


@pytest.mark.parametrize("path", ["/login", "/validationpolicy"])
def test_deeply_nested_json_is_unexpected_not_a_crash(fake_atlas, connection, accounts, path):
    fake_atlas.inject(200, path=path, body=b"[" * 100_000, content_type="application/json")
    assert only_error(prove(connection, accounts[0])).code == "globalsign.unexpected_response"


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9\u00b2", " 12 5 ", "-1", "1e3"])
def test_odd_retry_after_values_are_ignored(fake_atlas, connection, accounts, value):
    fake_atlas.inject(503, path="/login", times=5, description="Service busy",
                      headers={"Retry-After": value})
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unavailable"


def test_a_huge_answer_is_unexpected_and_not_read_whole(fake_atlas, connection, accounts):
    # Atlas's answers are a few KB; a front end streaming megabytes is not one of them.
    huge = b'{"description": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    fake_atlas.inject(200, path="/validationpolicy", body=huge, content_type="application/json")
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unexpected_response" and "larger than" in error.detail
    assert len(error.detail) < 500


def test_a_body_that_does_not_match_its_content_encoding_is_unexpected(fake_atlas, connection,
                                                                      accounts):
    fake_atlas.inject(200, path="/login", body=b"not gzip at all",
                      content_type="application/json", headers={"Content-Encoding": "gzip"})
    error = only_error(prove(connection, accounts[0]))
    assert error.code == "globalsign.unexpected_response" and "Content-Encoding" in error.detail
