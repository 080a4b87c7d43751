"""The DIP webhook through its HTTP function (real ``func.HttpRequest``), hostile cases first."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from shared.certs.facts import describe
from shared.dip.inbox.blob import BlobInbox
from shared.dip.inbox.sqlite import SqliteInbox
from shared.services import webhook
from tests.support.functions import call_http
from tests.support.leaks import assert_no_secrets

URL = "https://dip-edge.example.net/api/webhooks/dip"


def delivery(*txids: str) -> bytes:
    return json.dumps([
        {"payload": {"CommonBlock": {
            "S0": {"interfaceID": "IF-033", "schemaVersion": "011"},
            "D0": {"transactionID": t, "publicationID": "PUB-033", "replayIndicator": False,
                   "transactionTimestamp": "2026-01-01T10:00:00.000Z"}},
            "CustomBlock": {"reading": 42}}}
        for t in txids]).encode()


@pytest.fixture
def env(app_env, dip_pki, tmp_path):
    app_env(**dip_pki.env())
    return tmp_path / "state"


def post(dip_pki, body: bytes, *, channel: str | None = None, client=None, sign=True,
         headers: dict | None = None, sign_kwargs: dict | None = None):
    url = f"{URL}/{channel}" if channel else URL
    sent = {"Content-Type": "application/json"}
    if client is not False:
        from tests.support.dip_pki import header_value

        sent["X-ARR-ClientCert"] = header_value(client) if client else dip_pki.client_header()
    if sign:
        sent.update(dip_pki.sign("POST", url, body, **(sign_kwargs or {})))
    sent.update(headers or {})
    response = call_http("dip_webhook", "POST", url, body=body, headers=sent,
                         route_params={"channel": channel} if channel else {})
    return response.status_code, json.loads(response.get_body()), response


def stored(state: Path) -> list[str]:
    inbox = SqliteInbox(state / "inbox.sqlite3")
    try:
        return [m.transaction_id for m in inbox.list()]
    finally:
        inbox.close()


def test_delivery_is_stored_and_acknowledged(env, dip_pki):
    status, doc, response = post(dip_pki, delivery("tx-1", "tx-2"), channel="pub-033")
    assert status == 200, doc
    assert doc == {"accepted": 2, "duplicates": 0, "conflicts": 0,
                   "transactionIds": ["tx-1", "tx-2"]}
    assert response.headers["Content-Type"] == "application/json"
    inbox = SqliteInbox(env / "inbox.sqlite3")
    message = inbox.get("tx-1")
    inbox.close()
    assert message.channel == "pub-033"
    sha256 = dip_pki.client.certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert message.client_thumbprint == sha256
    assert message.signer_thumbprint and message.signer_thumbprint != message.client_thumbprint


def test_bare_route_has_no_channel(env, dip_pki):
    status, doc, _ = post(dip_pki, delivery("tx-1"))
    assert status == 200
    inbox = SqliteInbox(env / "inbox.sqlite3")
    assert inbox.get("tx-1").channel is None
    inbox.close()


def test_replayed_delivery_is_stored_once_and_acknowledged_twice(env, dip_pki):
    body = delivery("tx-1")
    assert post(dip_pki, body)[:2] == (200, {"accepted": 1, "duplicates": 0, "conflicts": 0,
                                             "transactionIds": ["tx-1"]})
    assert post(dip_pki, body)[:2] == (200, {"accepted": 0, "duplicates": 1, "conflicts": 0,
                                             "transactionIds": ["tx-1"]})
    assert stored(env) == ["tx-1"]


def changed(body: bytes) -> bytes:
    """The same transaction IDs, delivered again with another transactionTimestamp."""
    return body.replace(b"2026-01-01T10:00:00.000Z", b"2026-01-02T10:00:00.000Z")


def test_a_redelivery_with_other_bytes_is_a_conflict_acknowledged_and_warned(
        env, dip_pki, caplog):
    caplog.set_level(logging.INFO, logger="dip_edge")
    assert post(dip_pki, delivery("tx-1", "tx-2"))[1]["accepted"] == 2
    status, doc, _ = post(dip_pki, changed(delivery("tx-1", "tx-3")))
    assert (status, doc) == (200, {"accepted": 1, "duplicates": 1, "conflicts": 1,
                                   "transactionIds": ["tx-1", "tx-3"]})
    warned = [r for r in caplog.records
              if getattr(r, "code", None) == "message.conflicting_redelivery"]
    assert [(r.levelname, r.transaction_id) for r in warned] == [("WARNING", "tx-1")]
    (record,) = [r for r in caplog.records if r.name == "dip_edge.webhook"][-1:]
    assert record.custom_dimensions["conflicts"] == 1  # the delivery record counts it
    inbox = SqliteInbox(env / "inbox.sqlite3")
    try:
        assert [c.body for c in inbox.get("tx-1").copies] == [
            json.dumps(json.loads(changed(delivery("tx-1")))[0]).encode()]
    finally:
        inbox.close()


def test_charset_utf8_is_accepted(env, dip_pki):
    status, _, _ = post(dip_pki, delivery("tx-1"),
                        headers={"Content-Type": "application/json; charset=UTF-8"})
    assert status == 200


@pytest.mark.parametrize("client, status, code", [
    (False, 401, "clientcert.missing"),
    ("impostor", 403, "clientcert.untrusted"),
    ("expired", 403, "clientcert.expired"),
    ("stranger", 403, "clientcert.identity_mismatch"),
])
def test_client_certificate_rejections(env, dip_pki, client, status, code):
    chosen = getattr(dip_pki, client) if client else False
    got, doc, response = post(dip_pki, delivery("tx-1"), client=chosen)
    assert (got, doc["code"]) == (status, code)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert stored(env) == []


GARBAGE = "%%%not base64!!!"


@pytest.mark.parametrize("header, status, code", [
    ("X-ARR-ClientCert", 403, "clientcert.malformed"),
    ("X-DIP-Signature-Date", 403, "signature.malformed"),
    ("X-DIP-Content-Hash", 403, "signature.malformed"),
    ("X-DIP-Signature-Certificate", 403, "signature.malformed"),
    ("X-DIP-Signature", 403, "signature.malformed"),
    ("Content-Type", 415, "message.unsupported_media_type"),
])
def test_garbage_in_every_header(env, dip_pki, header, status, code):
    got, doc, _ = post(dip_pki, delivery("tx-1"), headers={header: GARBAGE})
    assert (got, doc["code"]) == (status, code)
    assert stored(env) == []


@pytest.mark.parametrize("header", ["X-ARR-ClientCert", "X-DIP-Signature-Certificate"])
def test_valid_base64_of_garbage(env, dip_pki, header):
    got, doc, _ = post(dip_pki, delivery("tx-1"),
                       headers={header: base64.b64encode(b"\x30\x82garbage").decode()})
    assert got == 403 and doc["code"] in {"clientcert.malformed", "signature.malformed"}


def test_tampered_body_with_the_original_signature(env, dip_pki):
    original = delivery("tx-1")
    headers = dip_pki.sign("POST", URL, original)
    tampered = original.replace(b"42", b"43")
    got, doc, _ = post(dip_pki, tampered, sign=False, headers=headers)
    assert (got, doc["code"]) == (403, "signature.content_hash_mismatch")


def test_signature_from_another_key(env, dip_pki):
    got, doc, _ = post(dip_pki, delivery("tx-1"),
                       sign_kwargs={"private_key": dip_pki.other_signer_key})
    assert (got, doc["code"]) == (403, "signature.invalid")


def test_signature_for_another_url(env, dip_pki):
    body = delivery("tx-1")
    headers = dip_pki.sign("POST", "https://elsewhere.example/api/webhooks/dip", body)
    got, doc, _ = post(dip_pki, body, sign=False, headers=headers)
    assert (got, doc["code"]) == (403, "signature.invalid")


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_stale_or_future_date(env, dip_pki, offset):
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    got, doc, _ = post(dip_pki, delivery("tx-1"), sign_kwargs={"at": at})
    assert (got, doc["code"]) == (403, "signature.stale")


@pytest.mark.parametrize("signer", ["stranger", "impostor_signer", "expired"])
def test_signer_not_the_dips(env, dip_pki, signer):
    got, doc, _ = post(dip_pki, delivery("tx-1"),
                       sign_kwargs={"signer": getattr(dip_pki, signer)})
    assert (got, doc["code"]) == (403, "signature.untrusted_certificate")


def test_unsigned_delivery(env, dip_pki):
    got, doc, _ = post(dip_pki, delivery("tx-1"), sign=False)
    assert (got, doc["code"]) == (401, "signature.missing")


@pytest.mark.parametrize("body, code", [
    (b'[{"payload": ', "message.malformed_json"),
    (b"\xff\xfe\x00[", "message.malformed_json"),
    (b"[" * 100_000 + b"]" * 100_000, "message.malformed_json"),
    (b'{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"}}}}',
     "message.invalid_envelope"),
    (b"[]", "message.invalid_envelope"),
    (b'[{"payload": {"CommonBlock": {"S0": {}}}}]', "message.invalid_envelope"),
    # Valid JSON that no store (or the payload hash) can encode: once a 500.
    (b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"}, '
     b'"D0": {"transactionID": "tx-\\ud800"}}}}]', "message.invalid_envelope"),
    (b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"}}, "x": 1e400}}]',
     "message.invalid_envelope"),
])
def test_bad_bodies_properly_signed(env, dip_pki, body, code):
    got, doc, _ = post(dip_pki, body)
    assert (got, doc["code"]) == (400, code)


def test_ten_megabyte_body_is_refused_first(env, dip_pki):
    got, doc, _ = post(dip_pki, b"[" + b" " * (10 * 1024 * 1024) + b"]", client=False,
                       sign=False)
    assert (got, doc["code"]) == (413, "message.too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-16",
                                          "application/jsonx", ""])
def test_media_type_is_checked_before_the_certificate(env, dip_pki, content_type):
    got, doc, _ = post(dip_pki, delivery("tx-1"), client=False, sign=False,
                       headers={"Content-Type": content_type})
    assert (got, doc["code"]) == (415, "message.unsupported_media_type")


def test_certificate_is_checked_before_the_signature_and_signature_before_the_body(env, dip_pki):
    assert post(dip_pki, b"not json", client=dip_pki.impostor, sign=False)[1]["code"] == \
        "clientcert.untrusted"
    assert post(dip_pki, b"not json", sign=False)[1]["code"] == "signature.missing"


def test_storage_failing_between_two_messages(env, dip_pki):
    body = delivery("tx-1", "tx-2")
    assert post(dip_pki, delivery("tx-0"))[0] == 200  # the inbox exists
    db = sqlite3.connect(env / "inbox.sqlite3")
    db.execute("CREATE TRIGGER fail BEFORE INSERT ON messages WHEN NEW.transaction_id = 'tx-2' "
               "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    db.commit()
    got, doc, response = post(dip_pki, body)
    assert (got, doc["code"]) == (503, "inbox.unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert stored(env) == ["tx-0"]  # nothing of the failed delivery was acknowledged
    db.execute("DROP TRIGGER fail")
    db.commit()
    db.close()
    assert post(dip_pki, body)[1] == {"accepted": 2, "duplicates": 0, "conflicts": 0,
                                      "transactionIds": ["tx-1", "tx-2"]}
    assert post(dip_pki, body)[1]["duplicates"] == 2
    assert stored(env) == ["tx-0", "tx-1", "tx-2"]


def test_one_log_line_per_delivery_and_no_secrets(env, dip_pki, caplog):
    caplog.set_level(logging.INFO, logger="dip_edge")
    post(dip_pki, delivery("tx-1"))
    post(dip_pki, delivery("tx-2"), client=dip_pki.stranger)
    records = [r for r in caplog.records if r.name == "dip_edge.webhook"]
    assert len(records) == 2
    ok, refused = (r.custom_dimensions for r in records)
    assert [json.loads(r.getMessage()) for r in records] == [ok, refused]
    assert {k: ok[k] for k in ("record", "status", "code", "accepted", "duplicates",
                               "conflicts", "messages", "transactionIds", "interfaceIds",
                               "channel")} == {
        "record": "delivery", "status": 200, "code": None, "accepted": 1, "duplicates": 0,
        "conflicts": 0, "messages": 1, "transactionIds": ["tx-1"],
        "interfaceIds": ["IF-033"], "channel": None}
    assert ok["clientThumbprint"] == describe(dip_pki.client.certificate).thumbprint_sha256
    assert ok["signerThumbprint"] == describe(dip_pki.signer.certificate).thumbprint_sha256
    assert 0 < ok["durationMs"] < 10_000 and records[0].levelno == logging.INFO
    assert (refused["status"], refused["code"], refused["accepted"]) == (
        403, "clientcert.identity_mismatch", None)
    assert refused["clientThumbprint"] == describe(dip_pki.stranger.certificate).thumbprint_sha256
    assert records[1].levelno == logging.WARNING
    assert_no_secrets(caplog.text, dip_pki.signer.key_pem(), dip_pki.client.key_pem(),
                      dip_pki.client.cert_der())


def test_components_are_built_once_per_settings(env, dip_pki):
    post(dip_pki, delivery("tx-1"))
    from shared.settings import get_settings

    first = webhook.components(get_settings())
    post(dip_pki, delivery("tx-2"))
    assert webhook.components(get_settings()) is first


@pytest.mark.azurite
def test_blob_inbox_through_http_with_storage_stalling_mid_delivery(app_env, dip_pki, azurite):
    """The queue stalls after the blob and the index are written: 503 within the budget,
    then the DIP's retry completes the delivery, the conflict answers match SQLite's."""
    from tests.support.azurite import connection_string
    from tests.support.proxy import TcpProxy

    name = f"http{uuid.uuid4().hex[:12]}"
    queue = TcpProxy(azurite.queue_port)
    app_env(**dip_pki.env(
        INBOX_STORAGE=connection_string(azurite.blob_port, queue.port, azurite.table_port),
        INBOX_CONTAINER=name, INBOX_TABLE=name, INBOX_QUEUE=name, INBOX_TIMEOUT_SECONDS="2"))
    body = delivery("tx-1", "tx-2")
    assert post(dip_pki, delivery("tx-0"))[0] == 200  # the container, table and queue exist
    queue.stall()
    started = time.monotonic()
    try:
        got, doc, response = post(dip_pki, body, channel="pub-033")
    finally:
        queue.heal()
    assert (got, doc["code"]) == (503, "inbox.unavailable")
    assert time.monotonic() - started < 3
    assert int(response.headers["Retry-After"]) > 0
    assert_no_secrets(json.dumps(doc), azurite.connection_string.split("AccountKey=")[1][:40])
    got, doc, _ = post(dip_pki, body, channel="pub-033")
    assert (got, doc) == (200, {"accepted": 0, "duplicates": 2, "conflicts": 0,
                                "transactionIds": ["tx-1", "tx-2"]})
    got, doc, _ = post(dip_pki, changed(delivery("tx-1", "tx-3")), channel="pub-033")
    assert doc == {"accepted": 1, "duplicates": 1, "conflicts": 1,
                   "transactionIds": ["tx-1", "tx-3"]}
    inbox = BlobInbox.connect(azurite.connection_string, name, name, name)
    try:
        listed = {m.transaction_id: (m.channel, m.conflicts) for m in inbox.list()}
        assert listed == {"tx-0": (None, 0), "tx-1": ("pub-033", 1), "tx-2": ("pub-033", 0),
                          "tx-3": ("pub-033", 0)}
    finally:
        inbox.close()
        queue.close()


@pytest.mark.parametrize("channel", ["a\r\nFAKE LOG LINE", "\x1b[31mred", "c" * 257])
def test_hostile_channel_is_not_found_and_never_logged_or_stored(env, dip_pki, caplog, channel):
    # The route decodes %0D%0A, %1B... into the channel, which went verbatim into the log
    # line, the inbox and `inbox list`: a forged log line.
    caplog.set_level(logging.INFO, logger="dip_edge")
    got, doc, _ = post(dip_pki, delivery("tx-1"), channel=channel)
    assert (got, doc["code"]) == (404, "request.not_found")
    assert "FAKE" not in caplog.text and "\x1b" not in caplog.text
    assert stored(env) == []


# Characters that end or disguise a log line although they are not C0 controls.
LINE_BREAKERS = "\u2028\u2029\x85\u202e\u2066\u200f\u061c"


@pytest.mark.parametrize("channel", ["a\u2028FAKE LOG LINE", "b\u2029c", "nel\x85x",
                                     "rlo\u202egnp.exe", "iso\u2066late\u2069", "back\\x85"])
def test_a_channel_is_stored_as_it_is_and_logged_escaped(env, dip_pki, caplog, channel):
    caplog.set_level(logging.INFO, logger="dip_edge")
    got, doc, _ = post(dip_pki, delivery(f"tx-{len(channel)}"), channel=channel)
    assert got == 200, doc
    inbox = SqliteInbox(env / "inbox.sqlite3")
    try:
        assert [m.channel for m in inbox.list()] == [channel]  # distinct, exact
    finally:
        inbox.close()
    (record,) = [r for r in caplog.records if r.name == "dip_edge.webhook"]
    line = record.getMessage()  # the delivery record's JSON: every such character escaped
    assert not set(line) & set(LINE_BREAKERS) and line.isascii(), repr(line)
    assert json.loads(line)["channel"] == record.custom_dimensions["channel"] == channel
    from shared.logtext import shown

    # A backslash in the channel is doubled, so it cannot pose as an escape.
    assert shown("back\\x85") == "back\\\\x85" != shown("back\x85")


def test_undecodable_channels_are_not_found_so_they_never_collapse(env, dip_pki):
    # The host decodes %ff%fe and %fe%ff (not UTF-8) to the same U+FFFD U+FFFD: served,
    # they would be one channel. The route decodes as the local host does.
    from shared.devhost.functions import HttpRoute, compile_route

    path, pattern = compile_route("api", "webhooks/dip/{channel?}")
    route = HttpRoute("dip_webhook", "webhooks/dip/{channel?}", path, frozenset({"POST"}),
                      "anonymous", pattern, None)
    decoded = [route.match(f"/api/webhooks/dip/{raw}")["channel"]
               for raw in ("%ff%fe", "%fe%ff")]
    assert decoded[0] == decoded[1]  # what the webhook is handed
    for channel in decoded:
        got, doc, _ = post(dip_pki, delivery("tx-ff"), channel=channel)
        assert (got, doc["code"]) == (404, "request.not_found")
    assert stored(env) == []


def test_transaction_ids_in_conflict_warnings_are_escaped(env, dip_pki, caplog):
    caplog.set_level(logging.WARNING, logger="dip_edge")
    txid = "tx\u2028FAKE conflicting redelivery: code=none"
    assert post(dip_pki, delivery(txid))[0] == 200
    changed = json.loads(delivery(txid))
    changed[0]["payload"]["CustomBlock"]["reading"] = 43
    got, doc, _ = post(dip_pki, json.dumps(changed).encode())
    assert (got, doc["conflicts"]) == (200, 1)
    warnings = [r.getMessage() for r in caplog.records if "conflicting" in r.getMessage()]
    assert warnings and not any(set(w) & set(LINE_BREAKERS) for w in warnings)
    assert any("transaction_id=tx\\u2028FAKE" in w for w in warnings)


def test_in_azure_the_signed_url_is_the_apps_own_hostname_not_the_host_header(
        env, app_env, dip_pki):
    app_env(WEBSITE_SITE_NAME="dip-edge-webhook", AIA_FETCH="false",
            WEBSITE_HOSTNAME="dip-edge-webhook.azurewebsites.net")
    own = "https://dip-edge-webhook.azurewebsites.net/api/webhooks/dip"
    forged = "https://attacker.example/api/webhooks/dip"
    body = delivery("TX-HOST-1")

    def send(url_called: str, url_signed: str):
        headers = {"Content-Type": "application/json",
                   "X-ARR-ClientCert": dip_pki.client_header(),
                   **dip_pki.sign("POST", url_signed, body)}
        response = call_http("dip_webhook", "POST", url_called, body=body, headers=headers)
        return response.status_code, json.loads(response.get_body())

    # Signed for the app's hostname: accepted whatever Host the request claims.
    assert send(forged, own)[0] == 200
    # Signed for the Host header the caller wrote: not the URL the DIP called.
    got, doc = send(forged, forged)
    assert (got, doc["code"]) == (403, "signature.invalid")


def test_bad_monitor_settings_do_not_stop_deliveries(env, app_env, dip_pki):
    # Issue 13: EXPIRY_WARNING_DAYS=abc made every delivery a 500 config.invalid. The
    # webhook reads none of these; health lists them, the monitor reports them.
    app_env(EXPIRY_WARNING_DAYS="abc", EXPIRY_ERROR_DAYS="soon", MONITOR_SCHEDULE="daily",
            MONITOR_REPROVE_ATLAS="maybe", PFX_TRUSTED_ISSUERS="/no/such/issuers.pem",
            ATLAS_TIMEOUT_SECONDS="forever", SECRET_NAME_PFX="not a name!")
    status, doc, _ = post(dip_pki, delivery("TX-SETTINGS-1"))
    assert status == 200, doc
    assert stored(env) == ["TX-SETTINGS-1"]


def test_a_bad_webhook_setting_still_stops_deliveries(env, app_env, dip_pki):
    app_env(DIP_SIGNATURE_MAX_SKEW_SECONDS="abc")
    status, doc, _ = post(dip_pki, delivery("TX-SETTINGS-2"))
    assert (status, doc["code"]) == (500, "config.invalid")
    assert "DIP_SIGNATURE_MAX_SKEW_SECONDS" in doc["detail"]
    assert stored(env) == []
