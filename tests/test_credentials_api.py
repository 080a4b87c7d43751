"""The credential API through the declared functions, against the fake Atlas and the fake
Key Vault (the real SecretClient and DefaultAzureCredential through its managed-identity
endpoint)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import uuid

import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    NoEncryption,
    pkcs12,
)

from shared.atlas import account as atlas_account
from shared.atlas.proof import AtlasConnection, prove_credentials
from shared.certs.devpki import issue, new_key
from shared.certs.facts import describe
from shared.settings import get_settings
from shared.vault import open_store
from shared.vault.credentials import load_credentials
from tests.support.functions import call_http, functions
from tests.support.leaks import assert_no_secrets
from tests.support.pfx_factory import FIXTURE_FOR_CODE, PfxFactory

URL = "http://localhost/api/credentials"
PASSWORD = "Http-Pfx-Password-5b1e"


class Account:
    """An Atlas account as a certificate admin holds it: key, secret and a PFX."""

    def __init__(self, atlas, name: str, **issue_kwargs) -> None:
        self.api_key = uuid.uuid4().hex[:16]
        self.api_secret = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.issued = atlas.new_client_certificate(name, **issue_kwargs)
        self.pfx = pkcs12.serialize_key_and_certificates(
            name.encode(), self.issued.private_key, self.issued.certificate,
            self.issued.chain()[:1], BestAvailableEncryption(PASSWORD.encode()))
        self.thumbprint = describe(self.issued.certificate).thumbprint_sha1
        atlas.add_account(self.api_key, self.api_secret, self.issued)

    def json(self, **overrides) -> dict:
        document = {"apiKey": self.api_key, "apiSecret": self.api_secret,
                    "pfx": base64.b64encode(self.pfx).decode(), "pfxPassword": PASSWORD}
        document.update(overrides)
        return {k: v for k, v in document.items() if v is not None}


@pytest.fixture(scope="module")
def accounts(atlas_server):
    return [Account(atlas_server, f"acme-access-{n}") for n in range(3)]


@pytest.fixture(scope="module")
def factory():
    return PfxFactory()


@pytest.fixture
def env(app_env, fake_atlas, fake_keyvault):
    """The app pointed at both fakes, with short timeouts and no backoff."""
    app_env(**fake_atlas.env(), **fake_keyvault.env(), ATLAS_TIMEOUT_SECONDS="2",
            ATLAS_MAX_RETRIES="1", ATLAS_RETRY_BACKOFF_SECONDS="0")
    return app_env


def post(document, *, path="", headers=None, raw: bytes | None = None):
    name = "credentials_validate" if path == "/validate" else "credentials"
    body = raw if raw is not None else json.dumps(document).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return call_http(name, "POST", URL + path, body=body, headers=headers)


def get():
    return call_http("credentials", "GET", URL)


def codes(response, key="errors"):
    return [f["code"] for f in json.loads(response.get_body())[key]]


CLI_WORDS = re.compile(r"--[a-z]|environment variable")


def assert_advice_for_the_api(response) -> None:
    """What to do is said in the API's and the page's terms: a certificate admin at the
    portal has no --trust, --password-env or environment variable to set."""
    body = json.loads(response.get_body())
    findings = body.get("errors", []) + body.get("warnings", [])
    assert findings
    for finding in findings:
        assert not CLI_WORDS.search(finding.get("action", "")), finding


def multipart(fields: dict[str, str | bytes], boundary="dip-edge-7MA4YWxkTrZu0gW"):
    chunks = []
    for name, value in fields.items():
        if isinstance(value, bytes):
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{name}.pfx"\r\n'
                    "Content-Type: application/x-pkcs12\r\n")
        else:
            head, value = f'Content-Disposition: form-data; name="{name}"\r\n', value.encode()
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + value + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def nothing_stored(fake_keyvault) -> bool:
    return not fake_keyvault.secrets and not any(m == "PUT" for m, _ in fake_keyvault.requests)


# -- the happy paths -------------------------------------------------------------------------


def test_submit_stores_in_key_vault_reads_back_and_logs_in_again(env, fake_atlas,
                                                                fake_keyvault, accounts):
    account = accounts[0]
    response = post(account.json(), headers={"X-MS-CLIENT-PRINCIPAL-NAME": "admin@acme.test"})
    assert response.status_code == 201, response.get_body()
    body = json.loads(response.get_body())
    assert body["status"] == "Added successfully"
    assert body["certificate"]["thumbprintSha1"] == account.thumbprint
    assert body["globalsign"]["proven"] is True
    assert body["stored"]["validatedBy"] == "admin@acme.test"
    assert fake_atlas.logins() == 1

    described = json.loads(get().get_body())
    assert described["stored"] is True
    assert described["credentials"]["thumbprint"] == account.thumbprint
    assert described["credentials"]["subject"] == account.issued.certificate.subject \
        .rfc4514_string()

    settings = get_settings()
    stored = load_credentials(open_store(settings), settings)
    assert (stored.api_key, stored.api_secret) == (account.api_key, account.api_secret)
    key, certificate, chain = pkcs12.load_key_and_certificates(stored.pfx, None)
    assert certificate == account.issued.certificate
    login = atlas_account.Account(stored.api_key, stored.api_secret, certificate, key,
                                  tuple(chain))
    again = prove_credentials(login, AtlasConnection.from_settings(settings))
    assert again.proven and fake_atlas.logins() == 2
    assert "fake-mi-token.https://vault.azure.net" in fake_keyvault.tokens_seen


def test_multipart_submission_is_added_to_the_local_store(app_env, fake_atlas, accounts):
    app_env(**fake_atlas.env())
    account = accounts[1]
    body, headers = multipart({"apiKey": account.api_key, "apiSecret": account.api_secret,
                               "pfx": account.pfx, "pfxPassword": PASSWORD})
    response = call_http("credentials", "POST", URL, body=body, headers=headers)
    assert response.status_code == 201, response.get_body()
    settings = get_settings()
    assert settings.secret_store == "local"
    assert load_credentials(open_store(settings), settings).api_key == account.api_key


def test_validate_checks_everything_and_stores_nothing(env, fake_atlas, fake_keyvault,
                                                      accounts):
    response = post(accounts[0].json(), path="/validate")
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["valid"] is True and body["errors"] == []
    assert body["globalsign"]["account"]["issuanceQuota"] == 999881
    assert fake_atlas.logins() == 1 and nothing_stored(fake_keyvault)


def test_validate_names_the_pkcs12_protection_and_warns_of_an_unused_password(
        env, fake_atlas, fake_keyvault, accounts):
    body = json.loads(post(accounts[0].json(), path="/validate").get_body())
    assert body["pkcs12"]["mac"]["algorithm"] == "HMAC-SHA-256"
    assert body["pkcs12"]["keyEncryption"][0]["algorithm"].startswith("PBES2 AES-256-CBC")
    # The same key and certificate in a password-less PFX, submitted with a password.
    account = accounts[0]
    passwordless = pkcs12.serialize_key_and_certificates(
        b"x", account.issued.private_key, account.issued.certificate,
        account.issued.chain()[:1], NoEncryption())
    response = post(account.json(pfx=base64.b64encode(passwordless).decode()),
                    path="/validate")
    body = json.loads(response.get_body())
    assert response.status_code == 200 and body["valid"] is True
    assert [w["code"] for w in body["warnings"]] == ["pfx.password_unused"]
    assert_no_secrets(response.get_body().decode(), PASSWORD, account.api_secret)


def test_get_with_nothing_stored(env):
    response = get()
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert (body["stored"], body["credentials"]) == (False, None)


def test_expiring_soon_is_a_warning_and_still_added(env, fake_atlas):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    soon = Account(fake_atlas, "acme-soon", not_before=now - timedelta(days=300),
                   not_after=now + timedelta(days=5), key=new_key("p256"))
    response = post(soon.json())
    assert response.status_code == 201
    assert codes(response, "warnings") == ["cert.expiring_soon"]


def test_credential_functions_are_not_anonymous():
    for name in ("credentials", "credentials_validate"):
        assert functions()[name].get_trigger().auth_level.name == "FUNCTION"


# -- findings ------------------------------------------------------------------------------


def test_every_finding_is_reported_together_and_nothing_is_stored(env, fake_atlas,
                                                                 fake_keyvault, accounts):
    response = post(accounts[0].json(apiKey=None, apiSecret="", pfxPassword="wrong"))
    assert response.status_code == 422
    body = json.loads(response.get_body())
    assert body["code"] == "credentials.api_key_missing"
    assert codes(response) == ["credentials.api_key_missing", "credentials.api_secret_missing",
                               "pfx.wrong_password"]
    assert_advice_for_the_api(response)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert fake_atlas.requests == [] and nothing_stored(fake_keyvault)


# Every PFX and certificate code through the HTTP function (the file-level ones made here).
PFX_CASES = {"pfx.missing": None, "pfx.too_large": "too_large", "pfx.not_pkcs12": "not_pkcs12",
             **FIXTURE_FOR_CODE}


@pytest.mark.parametrize(("code", "kind"), sorted(PFX_CASES.items()))
def test_pfx_and_certificate_codes_through_http(env, fake_atlas, fake_keyvault, accounts,
                                                factory, code, kind):
    document = accounts[0].json(pfx=None, pfxPassword=None)
    if kind == "too_large":
        document["pfx"] = base64.b64encode(os.urandom(1024 * 1024 + 1)).decode()
    elif kind == "not_pkcs12":
        document["pfx"] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    elif kind is not None:
        pfx = getattr(factory, kind)
        document["pfx"] = base64.b64encode(pfx.data).decode()
        if code != "pfx.wrong_password" and pfx.password:
            document["pfxPassword"] = pfx.password.decode()
    response = post(document)
    assert response.status_code == 422, response.get_body()
    assert code in codes(response)
    assert_advice_for_the_api(response)
    assert fake_atlas.requests == [] and nothing_stored(fake_keyvault)


def test_wrong_secret_is_invalid_credentials(env, fake_keyvault, accounts):
    response = post(accounts[0].json(apiSecret="0" * 40))
    assert response.status_code == 422
    assert codes(response) == ["globalsign.invalid_credentials"]
    assert nothing_stored(fake_keyvault)


def test_valid_pfx_with_another_accounts_key_is_refused_and_the_old_set_stays(
        env, fake_keyvault, accounts):
    assert post(accounts[0].json()).status_code == 201
    mixed = accounts[1].json(apiKey=accounts[0].api_key, apiSecret=accounts[0].api_secret)
    response = post(mixed)
    assert response.status_code == 422
    assert codes(response) == ["globalsign.invalid_credentials"]
    assert json.loads(get().get_body())["credentials"]["thumbprint"] == accounts[0].thumbprint


def test_certificate_globalsign_does_not_know_is_mtls_rejected(env, fake_atlas, fake_keyvault,
                                                               tmp_path):
    other_ca = issue("Other Private CA", organization="Acme Energy Test", ca=True, ekus=None,
                     key=new_key("p256"))
    leaf = issue("acme-unknown-to-atlas", issuer=other_ca, organization="Acme Energy Ltd")
    trust = tmp_path / "trust.pem"
    trust.write_bytes(fake_atlas.mtls_ca_path.read_bytes() + other_ca.cert_pem())
    env(PFX_TRUSTED_ISSUERS=str(trust))
    pfx = pkcs12.serialize_key_and_certificates(b"x", leaf.private_key, leaf.certificate,
                                                None, BestAvailableEncryption(b"pw"))
    response = post({"apiKey": "a" * 16, "apiSecret": "b" * 40,
                     "pfx": base64.b64encode(pfx).decode(), "pfxPassword": "pw"})
    assert response.status_code == 422, response.get_body()
    assert codes(response) == ["globalsign.mtls_rejected"]
    assert nothing_stored(fake_keyvault)


def test_globalsign_busy_is_503_with_retry_after_and_nothing_stored(env, fake_atlas,
                                                                   fake_keyvault, accounts):
    env(ATLAS_TIMEOUT_SECONDS="0.2")  # caps the wait Retry-After asks for
    fake_atlas.busy(times=10, retry_after=120)
    response = post(accounts[0].json())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "120"
    assert json.loads(response.get_body())["code"] == "globalsign.unavailable"
    assert nothing_stored(fake_keyvault)


def test_globalsign_slow_is_503_with_a_default_retry_after(env, fake_atlas, fake_keyvault,
                                                          accounts):
    env(ATLAS_TIMEOUT_SECONDS="0.3", ATLAS_MAX_RETRIES="0")
    fake_atlas.slow(1.0, times=5)
    response = post(accounts[0].json())
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert codes(response) == ["globalsign.unavailable"]
    assert nothing_stored(fake_keyvault)


def test_globalsign_unexpected_answer_is_502(env, fake_atlas, fake_keyvault, accounts):
    fake_atlas.inject(404, path="/validationpolicy", description="Not Found")
    response = post(accounts[0].json())
    assert response.status_code == 502
    body = json.loads(response.get_body())
    assert body["code"] == "globalsign.unexpected_response" and "Not Found" in body["detail"]
    assert_advice_for_the_api(response)
    assert nothing_stored(fake_keyvault)


# -- requests that are not submissions -------------------------------------------------------


@pytest.mark.parametrize(("raw", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, "request.malformed"),
    (b"[1, 2]", "application/json", 400, "request.malformed"),
    (b'{"apiKey": 7}', "application/json", 400, "request.malformed"),
    (b'{"apiKey": "k", "apiSecret": "s", "pfx": "***"}', "application/json", 422,
     "pfx.not_pkcs12"),
    (b"apiKey=x", "application/x-www-form-urlencoded", 415, "request.unsupported_media_type"),
    (b"{}", "", 415, "request.unsupported_media_type"),
    (b"--b\r\nno-colon-here\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b", 400,
     "request.malformed"),
    (b"--b\r\nContent-Disposition: form-data; name=\"apiKey\"\r\n\r\nx", "multipart/form-data;"
     " boundary=b", 400, "request.malformed"),
    (b"whatever", "multipart/form-data", 400, "request.malformed"),
    (b"--b\r\nContent-Disposition: form-data; name=\"apiKey\"" + b"; x=y" * 20_000
     + b"\r\n\r\nk\r\n--b--\r\n", "multipart/form-data; boundary=b", 400,
     "request.malformed"),  # a part head this size costs the email parser seconds per MB
    (b"--\xe2\x82\xac\r\n", "multipart/form-data; boundary=\u20ac", 400, "request.malformed"),
    (b"[" * 100_000, "application/json", 400, "request.malformed"),  # nesting: RecursionError
    (b'{"apiKey": "k", "apiSecret": "s", "pfxPassword": "\\ud800"}', "application/json", 400,
     "request.malformed"),  # a lone surrogate is no text: it cannot be encoded as UTF-8
    (b'{"apiKey": "\\udfff", "apiSecret": "s"}', "application/json", 400, "request.malformed"),
])
def test_bodies_that_are_not_submissions(env, fake_keyvault, raw, content_type, status, code):
    headers = {"Content-Type": content_type} if content_type else {}
    response = call_http("credentials", "POST", URL, body=raw, headers=headers)
    assert response.status_code == status
    assert json.loads(response.get_body())["code"] == code
    assert nothing_stored(fake_keyvault)


def test_duplicate_multipart_field_is_malformed(env):
    body, headers = multipart({"apiKey": "a"})
    body = body.replace(b"--\r\n", b"\r\n") + body
    response = call_http("credentials", "POST", URL, body=body, headers=headers)
    assert json.loads(response.get_body())["code"] == "request.malformed"


def test_body_over_the_limit_is_too_large(env, accounts):
    env(CREDENTIALS_MAX_BODY_BYTES="1024")
    response = post(accounts[0].json())
    assert response.status_code == 413
    assert json.loads(response.get_body())["code"] == "request.too_large"


def test_bad_configuration_is_a_problem_not_a_crash(env, accounts):
    env(ATLAS_CA_BUNDLE="/nonexistent/ca.pem")
    response = post(accounts[0].json())
    assert response.status_code == 500
    body = json.loads(response.get_body())
    assert body["code"] == "config.invalid" and "ATLAS_CA_BUNDLE" in body["detail"]


# -- Key Vault failures and concurrency --------------------------------------------------------


def test_key_vault_down_mid_store_keeps_the_previous_set(env, fake_keyvault, accounts):
    assert post(accounts[0].json()).status_code == 201
    fake_keyvault.fail_writes_after(2)  # the new key and secret land, the PFX does not
    response = post(accounts[1].json())
    assert response.status_code == 503
    assert json.loads(response.get_body())["code"] == "secrets.unavailable"
    assert "Retry-After" in response.headers
    fake_keyvault.fail_writes_after(None)
    assert json.loads(get().get_body())["credentials"]["thumbprint"] == accounts[0].thumbprint
    settings = get_settings()
    stored = load_credentials(open_store(settings), settings)
    assert stored.api_key == accounts[0].api_key
    assert pkcs12.load_key_and_certificates(stored.pfx, None)[1] == accounts[0].issued \
        .certificate


def test_key_vault_down_answers_503_for_submit_and_describe(env, fake_keyvault, accounts):
    fake_keyvault.down = True
    for response in (post(accounts[0].json()), get()):
        assert response.status_code == 503
        assert json.loads(response.get_body())["code"] == "secrets.unavailable"


def test_key_vault_without_the_write_role_is_forbidden_not_retry_later(env, fake_keyvault,
                                                                      accounts):
    fake_keyvault.deny("setSecret")
    response = post(accounts[0].json())
    body = json.loads(response.get_body())
    assert (response.status_code, body["code"]) == (500, "secrets.forbidden")
    assert "Retry-After" not in response.headers
    assert "Key Vault Secrets Officer" in body["detail"]
    assert fake_keyvault.secrets == {}


def test_a_pfx_too_large_for_key_vault_is_refused_before_anything_is_written(
        env, fake_keyvault, atlas_server, accounts):
    # A valid certificate GlobalSign accepts, whose PFX is over Key Vault's 25,600
    # characters in base64 (about 19 KB): hundreds of DNS names.
    names = tuple(f"host-{n:04d}.meters.acme-energy.example" for n in range(600))
    big = Account(atlas_server, "acme-access-big", dns_names=names)
    assert len(base64.b64encode(big.pfx)) > 25_600
    assert post(accounts[0].json()).status_code == 201
    before = list(fake_keyvault.requests)
    response = post(big.json())
    body = json.loads(response.get_body())
    assert (response.status_code, body["code"]) == (413, "secrets.too_large")
    assert "25,600" in body["detail"] and "Retry-After" not in response.headers
    assert not [r for r in fake_keyvault.requests[len(before):] if r[0] == "PUT"]
    assert json.loads(get().get_body())["credentials"]["thumbprint"] == accounts[0].thumbprint


def test_concurrent_submissions_leave_one_whole_set(env, fake_keyvault, accounts):
    results: dict[int, int] = {}

    def submit(n: int) -> None:
        results[n] = post(accounts[n].json()).status_code

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: 201, 1: 201, 2: 201}
    settings = get_settings()
    stored = load_credentials(open_store(settings), settings)
    owner = next(a for a in accounts if a.api_key == stored.api_key)
    assert stored.api_secret == owner.api_secret
    assert pkcs12.load_key_and_certificates(stored.pfx, None)[1] == owner.issued.certificate
    assert stored.metadata.thumbprint == owner.thumbprint


# -- secrets never leak ----------------------------------------------------------------------


def test_no_secret_in_any_response_or_log_line(env, fake_atlas, fake_keyvault, accounts,
                                               caplog):
    caplog.set_level(logging.DEBUG)
    account = accounts[2]
    bodies = [
        post(account.json()),
        post(account.json(), path="/validate"),
        post(account.json(pfxPassword="not-" + PASSWORD)),
        post(account.json(apiSecret="f" * 40)),
        get(),
    ]
    # The password-less PFX written to the vault holds the private key in the clear.
    stored_pfx = [b["value"] for b in fake_keyvault.secrets[get_settings().secret_name_pfx]]
    fake_atlas.busy(times=10)
    bodies.append(post(account.json()))
    fake_atlas.reset()
    fake_keyvault.down = True
    bodies.append(post(account.json()))
    assert [r.status_code for r in bodies] == [201, 200, 422, 422, 200, 503, 503]
    tokens = {r.authorization.removeprefix("Bearer ") for r in fake_atlas.requests
              if r.authorization}
    text = "\n".join(r.get_body().decode() + str(dict(r.headers)) for r in bodies) + caplog.text
    outcomes = [(r.custom_dimensions["outcome"], r.custom_dimensions["status"])
                for r in caplog.records if r.name == "dip_edge.credentials"]
    assert outcomes == [("stored", 201), ("valid", 200), ("rejected", 422),
                        ("rejected", 422), ("rejected", 503), ("failed", 503)]
    key_pem = account.issued.key_pem().decode()
    assert_no_secrets(text, account.api_secret, PASSWORD, "not-" + PASSWORD, "f" * 40,
                      account.pfx, key_pem.splitlines()[1], *tokens, *stored_pfx)


def test_caller_is_logged_with_the_outcome_safely(env, accounts, caplog):
    caplog.set_level(logging.INFO, logger="dip_edge.credentials")
    post(accounts[0].json(apiKey=None),
         headers={"X-MS-CLIENT-PRINCIPAL-NAME": "mallory@acme.test\nforged line"})
    (record,) = [r for r in caplog.records if r.name == "dip_edge.credentials"]
    fields = record.custom_dimensions
    assert (fields["action"], fields["outcome"], fields["codes"], fields["caller"]) == (
        "submit", "rejected", ["credentials.api_key_missing"], "mallory@acme.test?forged line")
    assert "\n" not in record.getMessage()
