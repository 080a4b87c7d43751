"""The secret stores (local directory, Key Vault through the real SecretClient) and the
atomic credential set, with the same cases run against both."""

from __future__ import annotations

import base64
import os
import stat
import threading
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12

from shared.certs.devpki import issue, new_key
from shared.certs.facts import describe
from shared.problems import DipEdgeError
from shared.settings import load_settings
from shared.vault import open_store
from shared.vault.credentials import (
    PFX_CONTENT_TYPE,
    load_credentials,
    load_metadata,
    save_credentials,
)
from shared.vault.local import LocalSecretStore
from tests.support.fake_keyvault import TENANT, FakeCredential
from tests.support.leaks import assert_no_secrets

SETTINGS = load_settings({})


@pytest.fixture(params=["local", "keyvault"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalSecretStore(tmp_path / "secrets")
    return request.getfixturevalue("fake_keyvault").store()


@pytest.fixture(scope="module")
def identities():
    """Three certificate/key pairs standing for three credential sets."""
    ca = issue("Store Test CA", ca=True, ekus=None, key=new_key("p256"))
    return [issue(f"set-{n}", issuer=ca, key=new_key("p256")) for n in range(3)]


def pfx_of(issued) -> bytes:
    return pkcs12.serialize_key_and_certificates(b"x", issued.private_key, issued.certificate,
                                                 None, NoEncryption())


def save(store, issued, n: int):
    return save_credentials(store, SETTINGS, api_key=f"key-{n}", api_secret=f"secret-{n}",
                            pfx_passwordless=pfx_of(issued), facts=describe(issued.certificate))


def assert_is_set(loaded, identities, n: int) -> None:
    """The loaded set is exactly set ``n``: key, secret and PFX belong together."""
    assert (loaded.api_key, loaded.api_secret) == (f"key-{n}", f"secret-{n}")
    _, certificate, _ = pkcs12.load_key_and_certificates(loaded.pfx, None)
    assert certificate == identities[n].certificate
    assert loaded.metadata.thumbprint == describe(identities[n].certificate).thumbprint_sha1


class FlakyStore:
    """Wraps a store; the write after ``successful`` writes fails as the store would."""

    def __init__(self, inner, successful: int) -> None:
        self.inner, self.left = inner, successful

    def get_secret(self, name, version=None):
        return self.inner.get_secret(name, version)

    def set_secret(self, name, value, **kwargs):
        if self.left == 0:
            from shared.problems import SECRET_STORE_UNAVAILABLE

            raise DipEdgeError(SECRET_STORE_UNAVAILABLE("injected failure"))
        self.left -= 1
        return self.inner.set_secret(name, value, **kwargs)


# -- the SecretStore interface ---------------------------------------------------------------


def test_versions_latest_and_exact(store):
    first = store.set_secret("db-pass", "v1", content_type="text/plain", tags={"a": "b"})
    second = store.set_secret("db-pass", "v2")
    assert first.version != second.version
    latest = store.get_secret("db-pass")
    assert (latest.value, latest.version) == ("v2", second.version)
    old = store.get_secret("db-pass", first.version)
    assert (old.value, old.content_type, dict(old.tags)) == ("v1", "text/plain", {"a": "b"})
    assert isinstance(old.created_on, datetime)
    assert "v1" not in repr(old)


def test_missing_name_and_version_are_not_found(store):
    store.set_secret("present", "x")
    for name, version in (("absent", None), ("present", "0" * 32)):
        with pytest.raises(DipEdgeError) as caught:
            store.get_secret(name, version)
        assert caught.value.code == "secrets.not_found"


def test_update_tags_merges_into_one_version(store):
    first = store.set_secret("tagged", "x", tags={"a": "1", "b": "2"})
    second = store.set_secret("tagged", "y", tags={"a": "9"})
    store.update_tags("tagged", first.version, {"b": "3", "c": "4"})
    assert dict(store.get_secret("tagged", first.version).tags) == {"a": "1", "b": "3", "c": "4"}
    assert dict(store.get_secret("tagged", second.version).tags) == {"a": "9"}
    assert store.get_secret("tagged", first.version).value == "x"


# -- the credential set ----------------------------------------------------------------------


def test_nothing_stored(store):
    assert load_metadata(store, SETTINGS) is None
    with pytest.raises(DipEdgeError) as caught:
        load_credentials(store, SETTINGS)
    assert caught.value.code == "secrets.not_found"


def test_set_round_trip_and_what_is_stored_where(store, identities):
    metadata = save(store, identities[0], 0)
    assert_is_set(load_credentials(store, SETTINGS), identities, 0)
    assert load_metadata(store, SETTINGS) == metadata
    pfx = store.get_secret(SETTINGS.secret_name_pfx)
    assert pfx.content_type == PFX_CONTENT_TYPE == "application/x-pkcs12"
    key, certificate, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx.value), None)
    assert certificate == identities[0].certificate and key is not None
    facts = describe(identities[0].certificate)
    assert {k: pfx.tags[k] for k in ("thumbprint", "subject", "notAfter")} == {
        "thumbprint": facts.thumbprint_sha1, "subject": facts.subject,
        "notAfter": facts.not_after.isoformat()}
    assert datetime.fromisoformat(pfx.tags["validatedAt"]) <= datetime.now(UTC)
    manifest = store.get_secret(SETTINGS.secret_name_credential_set)
    everything = str(dict(pfx.tags)) + manifest.value + str(dict(manifest.tags))
    assert_no_secrets(everything, "secret-0", "key-0")
    assert metadata.versions == {
        "apiKey": store.get_secret(SETTINGS.secret_name_api_key).version,
        "apiSecret": store.get_secret(SETTINGS.secret_name_api_secret).version,
        "pfx": pfx.version}


@pytest.mark.parametrize("writes_before_failure", [0, 1, 2, 3])
def test_failure_mid_store_keeps_the_previous_set_current(store, identities,
                                                          writes_before_failure):
    save(store, identities[0], 0)
    with pytest.raises(DipEdgeError) as caught:
        save(FlakyStore(store, writes_before_failure), identities[1], 1)
    assert caught.value.code == "secrets.unavailable"
    assert_is_set(load_credentials(store, SETTINGS), identities, 0)
    save(store, identities[1], 1)  # a retry after the outage completes the new set
    assert_is_set(load_credentials(store, SETTINGS), identities, 1)


def test_failure_before_any_set_leaves_none(store, identities):
    with pytest.raises(DipEdgeError):
        save(FlakyStore(store, 3), identities[0], 0)
    assert load_metadata(store, SETTINGS) is None


def test_concurrent_saves_leave_one_whole_set(store, identities):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(3):
                save(store, identities[n], n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    seen: list[int] = []
    writing = True

    def reader() -> None:  # every set a reader sees mid-way is whole
        try:
            while writing:
                if load_metadata(store, SETTINGS) is not None:
                    loaded = load_credentials(store, SETTINGS)
                    seen.append(int(loaded.api_key.removeprefix("key-")))
                    assert_is_set(loaded, identities, seen[-1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writing = False
    watcher.join()
    assert errors == []
    loaded = load_credentials(store, SETTINGS)
    n = int(loaded.api_key.removeprefix("key-"))
    assert_is_set(loaded, identities, n)


# -- Key Vault specifics ---------------------------------------------------------------------


@pytest.mark.parametrize("writes_before_outage", [0, 1, 2, 3])
def test_key_vault_down_mid_store_keeps_the_previous_set(fake_keyvault, identities,
                                                         writes_before_outage):
    store = fake_keyvault.store()
    save(store, identities[0], 0)
    fake_keyvault.fail_writes_after(writes_before_outage)
    with pytest.raises(DipEdgeError) as caught:
        save(store, identities[2], 2)
    assert caught.value.code == "secrets.unavailable" and "503" in str(caught.value)
    fake_keyvault.fail_writes_after(None)
    assert_is_set(load_credentials(store, SETTINGS), identities, 0)
    # The orphans written before the outage are not what readers follow.
    assert len(fake_keyvault.versions(SETTINGS.secret_name_api_key)) == 1 + min(
        writes_before_outage, 1)


def test_key_vault_unreachable_is_unavailable(fake_keyvault):
    store = fake_keyvault.store()
    fake_keyvault.down = True
    with pytest.raises(DipEdgeError) as caught:
        store.get_secret("anything")
    assert caught.value.code == "secrets.unavailable"


def test_key_vault_challenge_names_scope_and_tenant(fake_keyvault):
    credential = FakeCredential()
    fake_keyvault.store(credential=credential).set_secret("x", "y")
    assert credential.calls[0] == (("https://vault.azure.net/.default",), TENANT, True)
    # The first request of a client goes without a body, to get the 401 challenge.
    assert fake_keyvault.requests[0] == ("PUT", "/secrets/x")


def test_open_store_uses_default_azure_credential_via_managed_identity(fake_keyvault,
                                                                        app_env):
    app_env(**fake_keyvault.env())
    from shared.settings import get_settings
    from shared.vault import _key_vault

    _key_vault.cache_clear()  # a new process: no client (and no token) from earlier tests
    store = open_store(get_settings())
    store.set_secret("mi", "ok")
    assert store.get_secret("mi").value == "ok"
    assert "fake-mi-token.https://vault.azure.net" in fake_keyvault.tokens_seen
    assert ("GET", "/msi/token") in fake_keyvault.requests


def test_open_store_refuses_bad_configuration(app_env):
    app_env(SECRET_STORE="keyvault")
    from shared.settings import get_settings

    with pytest.raises(DipEdgeError) as caught:
        open_store(get_settings())
    assert caught.value.code == "config.invalid"


# -- local specifics -------------------------------------------------------------------------


def test_local_store_is_owner_only_and_leaves_no_temporary_files(tmp_path):
    store = LocalSecretStore(tmp_path / "secrets")
    first = store.set_secret("private", "v1")
    store.set_secret("private", "v2")
    for path in [tmp_path / "secrets", *(tmp_path / "secrets").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    names = sorted(p.name for p in (tmp_path / "secrets" / "private" / "versions").iterdir())
    assert len(names) == 2 and f"{first.version}.json" in names
    assert not [p for p in (tmp_path / "secrets").rglob(".tmp-*")]


def test_local_store_tightens_an_existing_directory(tmp_path):
    (tmp_path / "secrets").mkdir(mode=0o755)
    os.chmod(tmp_path / "secrets", 0o755)
    LocalSecretStore(tmp_path / "secrets").set_secret("x", "y")
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "x" * 128, "name\n"])
def test_local_store_refuses_names_outside_the_rules(tmp_path, name):
    with pytest.raises(DipEdgeError) as caught:
        LocalSecretStore(tmp_path).set_secret(name, "v")
    assert caught.value.code == "config.invalid"
    assert not (tmp_path.parent / "escape").exists()


def test_open_store_defaults_to_local_under_the_state_dir(app_env, tmp_path):
    from shared.settings import get_settings

    store = open_store(get_settings())
    store.set_secret("here", "v")
    assert (tmp_path / "state" / "secrets" / "here" / "latest").is_file()


# -- Key Vault's permanent answers and throttling (reference/azure.md §8) ----------------------


def sdk_client(fake_keyvault):
    """A plain SecretClient, for what an operator does in the portal (delete, disable)."""
    from azure.keyvault.secrets import SecretClient

    return SecretClient(fake_keyvault.url, FakeCredential(), verify_challenge_resource=False,
                        connection_verify=str(fake_keyvault.ca_path), retry_total=0)


def puts(fake_keyvault) -> int:
    return sum(1 for method, _ in fake_keyvault.requests if method == "PUT")


@pytest.mark.parametrize(("action", "call", "role"), [
    ("setSecret", lambda s: s.set_secret("denied", "v"), "Key Vault Secrets Officer"),
    ("getSecret", lambda s: s.get_secret("denied"), "Key Vault Secrets User"),
])
def test_key_vault_rbac_refusal_is_forbidden_naming_the_role(fake_keyvault, action, call, role):
    from tests.support.fake_keyvault import CALLER_OID

    fake_keyvault.store().set_secret("denied", "v0")
    fake_keyvault.deny(action)
    before = len(fake_keyvault.requests)
    with pytest.raises(DipEdgeError) as caught:
        call(fake_keyvault.store(max_retries=3))
    err = caught.value
    assert err.code == "secrets.forbidden" and not err.finding.type.retryable
    assert err.retry_after is None
    detail = str(err)
    assert f"'{role}'" in detail and "ForbiddenByRbac" in detail and action in detail
    assert CALLER_OID in detail and "'denied'" in detail
    assert "\r" not in detail and "Caller is not authorized" not in detail  # our words
    # Not retried: one refused request (after the challenge, unless the SDK's process-wide
    # challenge cache already holds this vault's).
    assert len(fake_keyvault.requests) - before in (1, 2)


def test_forbidden_write_of_a_credential_set_writes_nothing_else(fake_keyvault, identities):
    store = fake_keyvault.store()
    fake_keyvault.deny("setSecret")
    with pytest.raises(DipEdgeError) as caught:
        save(store, identities[0], 0)
    assert caught.value.code == "secrets.forbidden"
    assert puts(fake_keyvault) <= 2 and fake_keyvault.secrets == {}  # (challenge +) 1st write


def test_writing_a_name_deleted_but_recoverable_says_how_to_recover(fake_keyvault):
    store = fake_keyvault.store(max_retries=3)
    store.set_secret("globalsign-pfx", "v1")
    client = sdk_client(fake_keyvault)
    client.begin_delete_secret("globalsign-pfx").result()
    with pytest.raises(DipEdgeError) as caught:
        store.set_secret("globalsign-pfx", "v2")
    err = caught.value
    assert err.code == "secrets.deleted_recoverable" and err.finding.type.status == 409
    assert not err.finding.type.retryable and err.retry_after is None
    detail = str(err)
    assert "'globalsign-pfx'" in detail
    assert "az keyvault secret recover --vault-name 127 --name globalsign-pfx" in detail
    assert "az keyvault secret purge" in detail and "purge protection" in detail
    # What the detail says works: recovered, the name takes new versions again.
    client.begin_recover_deleted_secret("globalsign-pfx").result()
    assert store.get_secret("globalsign-pfx").value == "v1"
    assert store.set_secret("globalsign-pfx", "v2").value == "v2"


def test_reading_a_disabled_version_is_disabled(fake_keyvault):
    store = fake_keyvault.store()
    first = store.set_secret("switched-off", "v1")
    sdk_client(fake_keyvault).update_secret_properties("switched-off", first.version,
                                                       enabled=False)
    for version, named in ((first.version, f"--version {first.version}"),
                           (None, "the latest version")):
        with pytest.raises(DipEdgeError) as caught:
            store.get_secret("switched-off", version)
        assert caught.value.code == "secrets.disabled"
        assert not caught.value.finding.type.retryable
        assert "--enabled true" in str(caught.value) and named in str(caught.value)


def test_fake_key_vault_refuses_values_over_its_limit(fake_keyvault):
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as caught:
        sdk_client(fake_keyvault).set_secret("big", "x" * 25_601)
    assert caught.value.status_code == 400 and caught.value.error.code == "BadParameter"
    assert sdk_client(fake_keyvault).set_secret("big", "x" * 25_600).value == "x" * 25_600


def test_too_large_values_are_refused_before_sending(store):
    store.set_secret("limit", "x" * 25_600)
    with pytest.raises(DipEdgeError) as caught:
        store.set_secret("limit", "x" * 25_601)
    assert caught.value.code == "secrets.too_large"
    assert "25,601" in str(caught.value) and "25,600" in str(caught.value)
    assert store.get_secret("limit").value == "x" * 25_600


def test_a_set_too_large_to_keep_writes_nothing(store, identities, fake_keyvault):
    save(store, identities[0], 0)
    before = (puts(fake_keyvault), fake_keyvault.versions(SETTINGS.secret_name_api_key))
    big_pfx = os.urandom(19_201)  # 25,604 characters in base64
    with pytest.raises(DipEdgeError) as caught:
        save_credentials(store, SETTINGS, api_key="key-1", api_secret="secret-1",
                         pfx_passwordless=big_pfx, facts=describe(identities[1].certificate))
    assert caught.value.code == "secrets.too_large"
    assert "The PFX (19,201 bytes) in base64" in str(caught.value)
    assert (puts(fake_keyvault), fake_keyvault.versions(SETTINGS.secret_name_api_key)) == before
    assert_is_set(load_credentials(store, SETTINGS), identities, 0)


def test_throttling_is_retried_after_the_servers_retry_after(fake_keyvault):
    import time

    store = fake_keyvault.store(max_retries=3)
    store.set_secret("busy", "v")  # the challenge is behind us
    fake_keyvault.throttle(1, retry_after="1")
    started = time.monotonic()
    assert store.get_secret("busy").value == "v"
    assert time.monotonic() - started >= 1  # it waited as told, then succeeded


def test_throttling_past_the_retries_is_unavailable_with_the_servers_retry_after(
        fake_keyvault):
    store = fake_keyvault.store(max_retries=1)
    store.set_secret("busy", "v")
    fake_keyvault.throttle(5, retry_after="1")
    with pytest.raises(DipEdgeError) as caught:
        store.get_secret("busy")
    err = caught.value
    assert err.code == "secrets.unavailable" and err.retry_after == 1
    assert "429" in str(err) and "Throttled" in str(err)
    from shared.problems import error_result

    assert error_result(err).headers["Retry-After"] == "1"


def test_a_long_retry_after_is_not_waited_for(fake_keyvault):
    store = fake_keyvault.store(max_retries=3)
    store.set_secret("busy", "v")
    fake_keyvault.throttle(5, retry_after="120")
    before = len(fake_keyvault.requests)
    with pytest.raises(DipEdgeError) as caught:
        store.get_secret("busy")
    assert caught.value.code == "secrets.unavailable" and caught.value.retry_after == 120
    assert len(fake_keyvault.requests) - before == 1  # asked once, then left to the caller
