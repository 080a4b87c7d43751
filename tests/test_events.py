"""The ``events`` queue function end to end: Event Grid events on an Azurite queue (base64
JSON, as Event Grid writes them), delivered through the function's declared trigger type,
against a real secret store and the fake GlobalSign Atlas; reports read back from
Azurite with the real blob SDK."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path

import azure.functions.queue as queue_types
import pytest
from azure.storage.blob import BlobServiceClient

from shared.problems import DipEdgeError
from shared.settings import get_settings
from tests.support.eventgrid import (
    blob_created_event,
    deliver,
    enqueue,
    key_vault_event,
    poison_messages,
    queue_clients,
    receive_one,
)
from tests.support.fake_atlas import FakeAtlas
from tests.support.functions import user_function
from tests.support.leaks import assert_no_secrets

pytestmark = pytest.mark.azurite

API_KEY = "0123456789abcdef"
API_SECRET = "f" * 8 + "0123456789abcdef0123456789abcdef"
PASSWORD = "upload-password-6q1"
VAULT = "https://dip-edge-kv.vault.azure.net"


@pytest.fixture(scope="module")
def atlas():
    with FakeAtlas() as fake:
        fake.leaf = fake.new_client_certificate("acme-atlas-access")
        fake.renewed = fake.new_client_certificate("acme-atlas-access-2027")
        fake.add_account(API_KEY, API_SECRET, fake.leaf, fake.renewed)
        yield fake


@pytest.fixture
def env(app_env, azurite, atlas, monkeypatch):
    """Settings for one test: its own queue and containers in the session's Azurite."""
    atlas.reset()
    suffix = uuid.uuid4().hex[:12]
    values = {"EVENTS_STORAGE": azurite.connection_string, "EVENTS_QUEUE": f"ev-{suffix}",
              "REPORTS_CONTAINER": f"rep-{suffix}", "UPLOADS_CONTAINER": f"up-{suffix}",
              "ATLAS_MAX_RETRIES": "0", "ATLAS_TIMEOUT_SECONDS": "5",
              **atlas.env()}
    for name in ("UPLOAD_IMPORT_TO_KEY_VAULT", "UPLOAD_KEEP_BLOB"):
        monkeypatch.delenv(name, raising=False)
    app_env(**values)
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    return type("Env", (), {"values": values, "set": staticmethod(app_env), "blobs": blobs,
                            "cs": azurite.connection_string, "queue": values["EVENTS_QUEUE"],
                            "reports": blobs.get_container_client(values["REPORTS_CONTAINER"]),
                            "uploads": blobs.get_container_client(values["UPLOADS_CONTAINER"])})


def store():
    from shared.vault import open_store

    return open_store(get_settings())


def put_pfx(value: str, content_type: str | None = "application/x-pkcs12") -> str:
    return store().set_secret(get_settings().secret_name_pfx, value,
                              content_type=content_type).version


def save_api_credentials(issued) -> None:
    from shared.certs.facts import to_passwordless_pfx
    from shared.certs.pfx_check import PfxPolicy, check_pfx
    from shared.vault.credentials import save_credentials

    report = check_pfx(issued.pfx(), None, PfxPolicy.from_settings(get_settings()))
    assert report.valid, report.errors
    save_credentials(store(), get_settings(), api_key=API_KEY, api_secret=API_SECRET,
                     pfx_passwordless=to_passwordless_pfx(report), facts=report.certificate)


def reports(env) -> dict[str, dict]:
    if not env.reports.exists():
        return {}
    return {b.name: json.loads(env.reports.download_blob(b.name).readall())
            for b in env.reports.list_blobs()}


def new_version_event(version: str, **kwargs) -> dict:
    return key_vault_event("SecretNewVersionCreated", get_settings().secret_name_pfx, version,
                           vault_url=VAULT, **kwargs)


# --- Microsoft's published samples (tests/fixtures/eventgrid), both schemas ------------------

SAMPLES = Path(__file__).parent / "fixtures" / "eventgrid"
SAMPLE_VERSION = "ee059b2bb5bc48398a53b168c6cdcb10"


def enqueue_text(env, text: str) -> None:
    """Put a sample on the queue exactly as written, base64-encoded as Event Grid does."""
    from azure.core.exceptions import ResourceExistsError

    sender, _ = queue_clients(env.cs, env.queue)
    try:
        sender.create_queue()
    except ResourceExistsError:
        pass
    sender.send_message(text)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_microsofts_key_vault_sample_is_read_as_published(env, schema):
    env.set(SECRET_NAME_PFX="newsecret")
    enqueue_text(env, (SAMPLES / f"keyvault-secret-new-version.{schema}.json").read_text())
    deliver(env.cs, env.queue)
    # NBF/EXP as strings, "ObjectName " and " ee05..." as printed: read, not rejected. The
    # version it names does not exist here, which is the report's finding.
    (name, report), = reports(env).items()
    assert name == f"keyvault/newsecret/{SAMPLE_VERSION}.json"
    assert [e["code"] for e in report["errors"]] == ["secrets.not_found"]
    assert report["event"]["id"] == "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"
    assert report["event"]["schema"] == schema
    assert report["secret"]["vault"] == "sample-kv.vault.azure.net"


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_microsofts_key_vault_sample_naming_a_real_version_is_validated(env, atlas, schema):
    env.set(SECRET_NAME_PFX="newsecret")
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    sample = (SAMPLES / f"keyvault-secret-new-version.{schema}.json").read_text()
    enqueue_text(env, sample.replace(SAMPLE_VERSION, version))  # keeps the leading space
    deliver(env.cs, env.queue)
    report = reports(env)[f"keyvault/newsecret/{version}.json"]
    assert report["outcome"] == "passed", report["errors"]
    assert report["certificate"]["commonName"] == "acme-atlas-access-2027"


@pytest.mark.parametrize("event_type", ["SecretNearExpiry", "SecretExpired"])
def test_microsofts_sample_shape_as_an_expiry_event_logs_the_published_date(env, caplog,
                                                                           event_type):
    sample = (SAMPLES / "keyvault-secret-new-version.eventgrid.json").read_text()
    enqueue_text(env, sample.replace("SecretNewVersionCreated", event_type))
    caplog.set_level(logging.WARNING)
    deliver(env.cs, env.queue)
    assert any("'newsecret'" in r.getMessage() and "2019-05-28T22:21:42+00:00" in
               r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert reports(env) == {}  # an expiry is a log record, not a rejection


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_microsofts_blob_created_sample_is_read_as_published(env, schema):
    env.set(UPLOADS_CONTAINER="test-container")
    enqueue_text(env, (SAMPLES / f"blob-created.{schema}.json").read_text())
    deliver(env.cs, env.queue)
    # The sample's blob is not in this storage account: the upload's report says so.
    (name, report), = reports(env).items()
    assert name == "uploads/new-file.txt/0x8D4BCC2E4835CD0.json"
    assert report["upload"]["eTag"] == "0x8D4BCC2E4835CD0"
    assert [e["code"] for e in report["errors"]] == ["pfx.missing"]
    assert report["event"]["schema"] == schema


# --- Key Vault: a new version of the PFX secret ---------------------------------------------


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_new_pfx_version_is_validated_against_atlas_tagged_and_reported(env, atlas, caplog,
                                                                        schema):
    save_api_credentials(atlas.leaf)
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    enqueue(env.cs, env.queue, new_version_event(version, schema=schema))
    caplog.set_level(logging.INFO)
    logins = atlas.logins()
    deliver(env.cs, env.queue)

    name = f"keyvault/{get_settings().secret_name_pfx}/{version}.json"
    report = reports(env)[name]
    assert report["outcome"] == "passed" and report["valid"] is True
    assert report["secret"]["version"] == version
    assert report["event"]["schema"] == schema
    assert report["certificate"]["commonName"] == "acme-atlas-access-2027"
    assert report["globalsign"]["proven"] is True
    assert atlas.logins() == logins + 1  # the new PFX was used to log in
    tags = store().get_secret(get_settings().secret_name_pfx, version).tags
    assert tags["validation"] == "passed" and "validationError" not in tags
    assert any(r.levelno == logging.INFO and "validation passed" in r.getMessage()
               for r in caplog.records)
    assert_no_secrets(caplog.text + json.dumps(report), API_SECRET)


def test_the_same_event_twice_gives_one_report_and_the_same_result(env, atlas, caplog):
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    event = new_version_event(version)
    enqueue(env.cs, env.queue, event, event)  # Event Grid delivers at least once
    deliver(env.cs, env.queue)
    first = reports(env)
    caplog.set_level(logging.INFO)
    deliver(env.cs, env.queue)
    assert reports(env) == first and len(first) == 1
    assert "already handled" in caplog.text
    (report,) = first.values()
    assert report["globalsign"] == {"checked": False,
                                    "reason": "no GlobalSign API key and secret are stored"}


def test_an_event_naming_no_version_of_a_missing_secret_is_reported_once(env):
    """With neither a version nor a secret, the report is named by the event's id, which
    may be any text."""
    event = new_version_event("0" * 32, event_id="odd id/../\u00e9t\u00e9")
    event["data"] = {"ObjectName": get_settings().secret_name_pfx}
    enqueue(env.cs, env.queue, event, event)
    deliver(env.cs, env.queue)
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["errors"][0]["code"] == "secrets.not_found"
    assert report["event"]["id"] == "odd id/../\u00e9t\u00e9"


@pytest.mark.parametrize("value, content_type, code, fragment", [
    ("%%% not base64 %%%", "application/x-pkcs12", "pfx.not_pkcs12", "not base64"),
    (base64.b64encode(b"\x30\x82\x01\x00 certainly not PKCS#12").decode(),
     "application/x-pkcs12", "pfx.not_pkcs12", None),
    ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
     "application/x-pem-file", "pfx.not_pkcs12", "application/x-pem-file"),
])
def test_a_pfx_secret_that_is_not_a_pfx_fails_with_a_precise_code(env, caplog, value,
                                                                  content_type, code,
                                                                  fragment):
    version = put_pfx(value, content_type)
    enqueue(env.cs, env.queue, new_version_event(version))
    caplog.set_level(logging.INFO)
    deliver(env.cs, env.queue)  # a permanent failure: recorded, not raised
    (report,) = reports(env).values()
    assert report["outcome"] == "failed"
    assert report["errors"][0]["code"] == code
    if fragment:
        assert fragment in report["errors"][0]["detail"]
    tags = store().get_secret(get_settings().secret_name_pfx, version).tags
    assert tags == {"validation": "failed", "validationError": code}
    assert any(r.levelno == logging.ERROR and code in r.getMessage() for r in caplog.records)


def test_a_secret_version_that_no_longer_exists_is_reported_not_retried(env):
    put_pfx("AAAA")
    enqueue(env.cs, env.queue, new_version_event("0" * 32))
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["errors"][0]["code"] == "secrets.not_found"
    assert report["secret"]["version"] == "0" * 32


def test_new_versions_of_other_secrets_and_unknown_types_are_ignored(env, caplog):
    caplog.set_level(logging.DEBUG, logger="dip_edge.events")
    other = key_vault_event("SecretNewVersionCreated", "some-other-secret", "1" * 32,
                            vault_url=VAULT)
    unknown = {**other, "id": str(uuid.uuid4()),
               "eventType": "Microsoft.KeyVault.KeyNewVersionCreated"}
    policy = {**other, "id": str(uuid.uuid4()),
              "eventType": "Microsoft.KeyVault.VaultAccessPolicyChanged"}
    enqueue(env.cs, env.queue, other, unknown, policy, as_array=True)
    deliver(env.cs, env.queue)
    assert reports(env) == {}
    assert "not the PFX secret" in caplog.text
    assert "ignored event" in caplog.text and "KeyNewVersionCreated" in caplog.text


@pytest.mark.parametrize("event_type, level, words", [
    ("SecretNearExpiry", logging.WARNING, "expires on 2031-01-01"),
    ("CertificateNearExpiry", logging.WARNING, "expires on 2031-01-01"),
    ("SecretExpired", logging.ERROR, "expired on 2031-01-01"),
    ("CertificateExpired", logging.ERROR, "expired on 2031-01-01"),
])
def test_expiry_events_are_recorded_at_their_severity(env, caplog, event_type, level, words):
    exp = 1924992000  # 2031-01-01T00:00:00Z
    kind = "Certificate" if event_type.startswith("Certificate") else "Secret"
    event = key_vault_event(event_type, get_settings().secret_name_pfx, "a" * 32,
                            vault_url=VAULT, object_type=kind, exp=exp)
    enqueue(env.cs, env.queue, event)
    caplog.set_level(logging.INFO)
    deliver(env.cs, env.queue)
    (record,) = [r for r in caplog.records if words in r.getMessage()]
    assert record.levelno == level
    assert "'globalsign-pfx' (the GlobalSign Atlas access PFX)" in record.getMessage()


# --- malformed messages ----------------------------------------------------------------------


@pytest.mark.parametrize("body, fragment", [
    (b"not json and not base64 !", "neither JSON nor base64"),
    (base64.b64encode(b"{not json"), "not valid JSON"),
    (b"[]", "empty array"),
    (json.dumps({"id": "1", "topic": "t", "subject": "s", "eventTime":
                 "2026-01-01T00:00:00Z", "data": {}}).encode(), "neither 'eventType'"),
    (json.dumps({"id": "1", "topic": "t", "subject": "s", "eventType": "x",
                 "data": {}}).encode(), "'eventTime'"),
    (json.dumps({"specversion": "1.0", "source": "s", "type": "t"}).encode(), "'id'"),
    (json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type":
                 "Microsoft.Storage.BlobCreated", "subject": "/nothing/here"}).encode(),
     "does not name a blob"),
    (b"[" * 40000, "nested too deeply"),
    (json.dumps(key_vault_event("SecretNewVersionCreated", "globalsign-pfx", "../../x",
                                vault_url=VAULT)).encode(), "not a Key Vault version"),
])
def test_a_malformed_message_is_recorded_as_rejected_and_not_retried(env, caplog, body,
                                                                     fragment):
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(env.cs, env.queue)
    client.create_queue()
    client.send_message(base64.b64encode(body).decode())
    deliver(env.cs, env.queue)  # does not raise
    (report,) = reports(env).values()
    assert report["kind"] == "invalid" and report["outcome"] == "failed"
    assert report["errors"][0]["code"] == "event.malformed"
    assert fragment in report["errors"][0]["detail"]
    assert poison_messages(env.cs, env.queue) == []


def test_raw_json_and_base64_bodies_are_both_read(env, atlas):
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    body = json.dumps([new_version_event(version)]).encode()
    events = user_function("events")
    events(queue_types.QueueMessage(id="m1", body=body, dequeue_count=1))
    events(queue_types.QueueMessage(id="m2", body=base64.b64encode(body), dequeue_count=1))
    assert len(reports(env)) == 1  # the second was the same event


# --- failures that pass: retry, then the poison queue ---------------------------------------


def test_globalsign_unavailable_is_retried_then_poisoned_with_a_reason(env, atlas, caplog):
    save_api_credentials(atlas.leaf)
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    enqueue(env.cs, env.queue, new_version_event(version))
    atlas.busy(times=100, path="/login")
    for attempt in range(1, 5):
        with pytest.raises(DipEdgeError) as raised:
            deliver(env.cs, env.queue, dequeue_count=attempt, delete=False)
        assert raised.value.code == "globalsign.unavailable"
        assert reports(env) == {}  # nothing half-written
    caplog.set_level(logging.INFO)
    deliver(env.cs, env.queue, dequeue_count=5)  # the last attempt completes the message
    (poisoned,) = poison_messages(env.cs, env.queue)
    assert poisoned["reason"]["code"] == "globalsign.unavailable"
    assert poisoned["dequeueCount"] == 5 and poisoned["queue"] == env.queue
    assert json.loads(poisoned["body"])["data"]["Version"] == version
    assert "moved to" in caplog.text and reports(env) == {}
    assert_no_secrets(caplog.text + json.dumps(poisoned), API_SECRET)


def test_storage_unavailable_raises_storage_unavailable(env, caplog):
    dead = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            + env.cs.split("AccountKey=")[1].split(";")[0]
            + ";BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
            "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    version = put_pfx("AAAA")
    env.set(EVENTS_STORAGE=dead)
    body = json.dumps(new_version_event(version)).encode()
    with pytest.raises(DipEdgeError) as raised:
        user_function("events")(queue_types.QueueMessage(id="m", body=body, dequeue_count=2))
    assert raised.value.code == "storage.unavailable"
    assert "will be retried" in caplog.text


# --- uploads --------------------------------------------------------------------------------


def upload(env, name: str, data: bytes, *, schema: str = "eventgrid") -> dict:
    if not env.uploads.exists():
        env.uploads.create_container()
    result = env.uploads.get_blob_client(name).upload_blob(data, overwrite=True)
    event = blob_created_event(env.values["UPLOADS_CONTAINER"], name, etag=result["etag"],
                               length=len(data), schema=schema)
    enqueue(env.cs, env.queue, event)
    return event


def uploaded_names(env) -> list[str]:
    return [b.name for b in env.uploads.list_blobs()]


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_an_uploaded_pfx_with_its_password_by_convention_is_validated_and_deleted(
        env, atlas, caplog, schema):
    from shared.events.uploads import password_secret_name

    name = "renewals/Acme 2027.pfx"
    assert password_secret_name(name) == "pfx-upload-password-renewals-acme-2027-pfx"
    store().set_secret(password_secret_name(name), PASSWORD)
    upload(env, name, atlas.renewed.pfx(PASSWORD.encode()), schema=schema)
    caplog.set_level(logging.INFO)
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["kind"] == "upload" and report["outcome"] == "passed", report["errors"]
    assert report["upload"]["blob"] == name
    assert report["imported"] is None
    assert uploaded_names(env) == []  # never left lying in storage
    assert_no_secrets(caplog.text + json.dumps(report), PASSWORD)


def test_an_upload_without_its_password_secret_reports_wrong_password(env, atlas):
    upload(env, "no-password-secret.pfx", atlas.renewed.pfx(PASSWORD.encode()))
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["errors"][0]["code"] == "pfx.wrong_password"


@pytest.mark.parametrize("size, code", [(0, "pfx.missing"), (1024 * 1024 + 1, "pfx.too_large")])
def test_empty_and_huge_uploads_get_precise_findings(env, size, code):
    upload(env, "odd.pfx", b"\x30" * size)
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["errors"][0]["code"] == code
    assert uploaded_names(env) == []


def test_keep_blob_setting_leaves_the_upload(env, atlas):
    env.set(UPLOAD_KEEP_BLOB="true")
    upload(env, "kept.pfx", atlas.renewed.pfx())
    deliver(env.cs, env.queue)
    assert uploaded_names(env) == ["kept.pfx"]


def test_an_upload_replaced_before_handling_is_left_to_its_own_event(env, atlas):
    upload(env, "twice.pfx", b"first, not a pfx")
    upload(env, "twice.pfx", atlas.renewed.pfx())  # a second upload under the same name
    deliver(env.cs, env.queue)  # the first event: superseded, nothing deleted or reported
    assert reports(env) == {} and uploaded_names(env) == ["twice.pfx"]
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["outcome"] == "passed" and uploaded_names(env) == []


def test_a_passing_upload_is_imported_with_the_stored_api_credentials(env, atlas):
    from shared.vault.credentials import load_credentials, load_metadata

    env.set(UPLOAD_IMPORT_TO_KEY_VAULT="true")
    save_api_credentials(atlas.leaf)
    before = load_metadata(store(), get_settings())
    event = upload(env, "renewal.pfx", atlas.renewed.pfx())
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["outcome"] == "passed" and report["globalsign"]["proven"] is True
    stored = load_credentials(store(), get_settings())
    assert stored.metadata.thumbprint == report["certificate"]["thumbprintSha1"]
    assert stored.metadata.thumbprint != before.thumbprint
    assert report["imported"]["alreadyCurrent"] is False
    assert stored.api_secret == API_SECRET  # the stored key and secret, kept
    # The same event again (say the first delivery's acknowledgement was lost): no new set.
    enqueue(env.cs, env.queue, event)
    deliver(env.cs, env.queue)
    assert load_metadata(store(), get_settings()).set_id == stored.metadata.set_id


def test_an_upload_is_not_imported_without_stored_api_credentials(env, atlas):
    env.set(UPLOAD_IMPORT_TO_KEY_VAULT="true")
    upload(env, "lonely.pfx", atlas.renewed.pfx())
    deliver(env.cs, env.queue)
    (report,) = reports(env).values()
    assert report["valid"] is True and report["outcome"] == "failed"
    assert [e["code"] for e in report["errors"]] == ["upload.not_imported"]
    assert report["imported"] is None


def test_blob_events_from_other_containers_are_ignored(env):
    enqueue(env.cs, env.queue, blob_created_event("elsewhere", "a.pfx", etag="0x1", length=3))
    deliver(env.cs, env.queue)
    assert reports(env) == {}
    assert receive_one(env.cs, env.queue) is None


# --- the same through Key Vault (the fake, driven by the real SecretClient) -----------------


@pytest.fixture
def kv_env(env, fake_keyvault):
    env.set(**fake_keyvault.env())
    env.vault = fake_keyvault
    return env


def test_key_vault_new_version_is_pulled_by_version_and_tagged_in_the_vault(kv_env, atlas):
    save_api_credentials(atlas.leaf)
    name = get_settings().secret_name_pfx
    version = store().set_secret(name, base64.b64encode(atlas.renewed.pfx()).decode(),
                                 content_type="application/x-pkcs12",
                                 tags={"uploadedBy": "pipeline"}).version
    put_pfx(base64.b64encode(b"a later version, not a PFX").decode())  # latest != event's
    enqueue(kv_env.cs, kv_env.queue, key_vault_event(
        "SecretNewVersionCreated", name, version, vault_url=kv_env.vault.url))
    deliver(kv_env.cs, kv_env.queue)
    (report,) = reports(kv_env).values()
    assert report["outcome"] == "passed" and report["secret"]["version"] == version
    bundle = next(b for b in kv_env.vault.secrets[name] if b["id"].endswith(version))
    assert bundle["tags"]["validation"] == "passed"
    assert bundle["tags"]["uploadedBy"] == "pipeline"  # merged, not replaced


def test_events_from_another_vault_are_ignored(kv_env):
    enqueue(kv_env.cs, kv_env.queue, new_version_event("b" * 32))  # VAULT, not the fake
    deliver(kv_env.cs, kv_env.queue)
    assert reports(kv_env) == {}


def test_key_vault_outage_is_retried_and_poisoned_on_the_last_attempt(kv_env):
    version = put_pfx("AAAA")
    enqueue(kv_env.cs, kv_env.queue, key_vault_event(
        "SecretNewVersionCreated", get_settings().secret_name_pfx, version,
        vault_url=kv_env.vault.url))
    kv_env.vault.down = True
    with pytest.raises(DipEdgeError) as raised:
        deliver(kv_env.cs, kv_env.queue, dequeue_count=1)
    assert raised.value.code == "secrets.unavailable"
    deliver(kv_env.cs, kv_env.queue, dequeue_count=5)
    (poisoned,) = poison_messages(kv_env.cs, kv_env.queue)
    assert poisoned["reason"]["code"] == "secrets.unavailable"
    assert reports(kv_env) == {}


def test_a_missing_role_is_reported_at_once_not_retried_to_the_poison_queue(kv_env, caplog):
    version = put_pfx("AAAA")
    enqueue(kv_env.cs, kv_env.queue, key_vault_event(
        "SecretNewVersionCreated", get_settings().secret_name_pfx, version,
        vault_url=kv_env.vault.url))
    kv_env.vault.deny("getSecret")
    caplog.set_level(logging.INFO)
    deliver(kv_env.cs, kv_env.queue, dequeue_count=1)  # completes: nothing to retry
    assert poison_messages(kv_env.cs, kv_env.queue) == []
    assert receive_one(kv_env.cs, kv_env.queue) is None
    ((name, report),) = reports(kv_env).items()
    assert name.startswith("failed/") and report["kind"] == "failed"
    assert report["outcome"] == "failed"
    (error,) = report["errors"]
    assert error["code"] == "secrets.forbidden" and "Key Vault Secrets User" in error["detail"]
    assert report["event"]["subject"] == get_settings().secret_name_pfx
    assert any("failed without retry" in r.getMessage() and "secrets.forbidden" in
               r.getMessage() for r in caplog.records)


def test_a_disabled_pfx_version_is_a_failed_report_for_that_version(kv_env):
    from azure.keyvault.secrets import SecretClient

    from tests.support.fake_keyvault import FakeCredential

    name = get_settings().secret_name_pfx
    version = put_pfx("AAAA")
    SecretClient(kv_env.vault.url, FakeCredential(), verify_challenge_resource=False,
                 connection_verify=str(kv_env.vault.ca_path)).update_secret_properties(
        name, version, enabled=False)
    enqueue(kv_env.cs, kv_env.queue, key_vault_event(
        "SecretNewVersionCreated", name, version, vault_url=kv_env.vault.url))
    deliver(kv_env.cs, kv_env.queue, dequeue_count=1)
    report = reports(kv_env)[f"keyvault/{name}/{version}.json"]
    assert [e["code"] for e in report["errors"]] == ["secrets.disabled"]
    assert poison_messages(kv_env.cs, kv_env.queue) == []


def test_import_without_the_write_role_fails_at_once_and_keeps_the_upload(kv_env, atlas):
    from shared.vault.credentials import load_metadata

    kv_env.set(UPLOAD_IMPORT_TO_KEY_VAULT="true")
    save_api_credentials(atlas.leaf)
    before = load_metadata(store(), get_settings())
    kv_env.vault.deny("setSecret")  # the ops app given Key Vault Secrets User only
    upload(kv_env, "renewal.pfx", atlas.renewed.pfx())
    deliver(kv_env.cs, kv_env.queue, dequeue_count=1)
    assert poison_messages(kv_env.cs, kv_env.queue) == []
    ((name, report),) = reports(kv_env).items()
    assert name.startswith("failed/")
    (error,) = report["errors"]
    assert error["code"] == "secrets.forbidden"
    assert "'Key Vault Secrets Officer'" in error["detail"]
    assert uploaded_names(kv_env) == ["renewal.pfx"]  # kept for a replay once granted
    assert load_metadata(store(), get_settings()) == before


def test_key_vault_failing_mid_import_leaves_nothing_half_written(kv_env, atlas):
    from shared.vault.credentials import load_credentials, load_metadata

    kv_env.set(UPLOAD_IMPORT_TO_KEY_VAULT="true")
    save_api_credentials(atlas.leaf)
    before = load_metadata(store(), get_settings())
    upload(kv_env, "renewal.pfx", atlas.renewed.pfx())
    kv_env.vault.fail_writes_after(1)  # the import's first write lands, the next fail
    with pytest.raises(DipEdgeError) as raised:
        deliver(kv_env.cs, kv_env.queue, dequeue_count=1)
    assert raised.value.code == "secrets.unavailable"
    assert reports(kv_env) == {} and uploaded_names(kv_env) == ["renewal.pfx"]
    assert load_metadata(store(), get_settings()) == before  # the old set is still current
    kv_env.vault.fail_writes_after(None)
    deliver(kv_env.cs, kv_env.queue, dequeue_count=2)
    (report,) = reports(kv_env).values()
    assert report["outcome"] == "passed" and report["imported"]["alreadyCurrent"] is False
    assert load_credentials(store(), get_settings()).metadata.thumbprint == \
        report["certificate"]["thumbprintSha1"]
    assert uploaded_names(kv_env) == []


# --- through Microsoft's Python worker, with the host's queue-message TypedData -------------


def test_a_queue_message_through_the_worker_is_validated_and_reported(env, atlas):
    from tests.support.worker import worker

    save_api_credentials(atlas.leaf)
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    body = json.dumps(new_version_event(version))
    worker().invoke_queue("events", body, message_id=str(uuid.uuid4()), dequeue_count=1)
    (report,) = reports(env).values()
    assert report["outcome"] == "passed" and report["secret"]["version"] == version
    # the same message again (the queue delivers at least once): one report still
    worker().invoke_queue("events", body.encode(), message_id=str(uuid.uuid4()))
    assert len(reports(env)) == 1


def test_a_transient_failure_through_the_worker_is_a_failed_invocation(env, atlas, caplog):
    from shared.devhost.language_worker import FunctionFailed
    from tests.support.worker import worker

    save_api_credentials(atlas.leaf)
    version = put_pfx(base64.b64encode(atlas.renewed.pfx()).decode())
    atlas.busy(times=100, path="/login")
    with pytest.raises(FunctionFailed) as failed:
        worker().invoke_queue("events", json.dumps(new_version_event(version)),
                              message_id="m-busy", dequeue_count=2)
    # what the host logs before retrying: the exception's type and message (the detail,
    # not the catalogue code)
    assert failed.value.exception_type == "DipEdgeError"
    assert failed.value.rpc_exception.message.startswith("DipEdgeError: GlobalSign answered")
    assert reports(env) == {}
    assert_no_secrets(caplog.text + failed.value.rpc_exception.message
                      + failed.value.rpc_exception.stack_trace, API_SECRET)
