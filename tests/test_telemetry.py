"""Structured records (shared/telemetry.py) as operators get them, and the alert rules and
workbook queries of infra/ run against records our own code wrote.

Records are captured two ways: from ``dip-edge serve --log-format json`` (a subprocess, real
TLS, the ``dip-edge send`` CLI, the credential API over HTTPS with the fake Atlas), and
through the functions of ``function_app.py`` in-process (caplog). Every KQL query must read
only fields that such records carry, and the filters of each alert are evaluated over them
(tests/support/kql.py): the records of the scenario an alert is for match, others do not.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import signal
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from shared.certs.facts import describe
from shared.settings import get_settings
from shared.telemetry import MAX_ITEMS, clean
from tests.support import kql
from tests.support.dip_pki import header_value
from tests.support.fake_atlas import FakeAtlas
from tests.support.functions import call_http, user_function
from tests.support.leaks import assert_no_secrets
from tests.test_serve_e2e import cli, start_serve, stop, tls_client, write_pem

pytestmark = pytest.mark.xdist_group("telemetry")

API_KEY = "a1b2c3d4e5f60718"
API_SECRET = "telemetry-secret-0123456789abcdef01234567"
PASSWORD = "telemetry-pfx-password"
PRINCIPAL = "admin@acme.test"
PRINCIPAL_ID = "3f2b6c1e-0000-4000-8000-00000000abcd"
SERVE_PRINTS = ("dip-edge serve:", "warning: setting ")
# Which test exercises each query against records (kept complete by the last test).
COVERED = {
    "credential-expiry-error": "test_expiry_alerts_follow_the_latest_monitor_run",
    "credential-expiry-warning": "test_expiry_alerts_follow_the_latest_monitor_run",
    "monitor-not-run": "test_expiry_alerts_follow_the_latest_monitor_run",
    "webhook-5xx-rate": "test_inbox_failures_drive_the_5xx_rate_alert",
    "webhook-rejections": "test_rejections_by_code_alert",
    "conflicting-redelivery": "test_conflicting_redelivery_alert",
    "events-poisoned": "test_poisoned_events_alert",
    "dependency-outage": "test_dependency_outage_alert",
    "Deliveries by outcome (accepted, or status and rejection code)":
        "test_serve_json_records_feed_the_workbook",
    "Webhook handling time, ms (p50, p95, p99)": "test_serve_json_records_feed_the_workbook",
    "Certificates watched by the expiry monitor (latest run)":
        "test_expiry_alerts_follow_the_latest_monitor_run",
    "Credential changes (audit trail)": "test_serve_json_records_feed_the_workbook",
}


def message(fields: dict) -> str:
    """The Message column Application Insights gets for a record (its JSON)."""
    return json.dumps(fields, separators=(",", ":"))


def assert_reads_only_emitted_fields(query: str, records: list[dict]) -> None:
    kind = kql.record_type(query)
    mine = [r for r in records if r["record"] == kind]
    assert mine, f"no {kind} record to check the query against"
    read = kql.fields(query)
    emitted = set().union(*(r.keys() for r in mine))
    assert read["d"] <= emitted, f"{kind}: the query reads fields never emitted: " \
        f"{read['d'] - emitted}"
    if read["c"]:
        lines = set().union(*(c.keys() for r in mine for c in r["credentials"]))
        assert read["c"] <= lines, f"credential lines lack {read['c'] - lines}"


def documented() -> dict[str, set[str]]:
    """Per record, the field names README's "Structured records" table lists."""
    text = (kql.ROOT / "README.md").read_text()
    section = text.split("### Structured records", 1)[1].split("###", 1)[0]
    fields = {}
    for row in re.finditer(r"^\| `(\w+)` \(.*$", section, re.M):
        cells = [c.strip() for c in row.group(0).split(" | ")]
        fields[row.group(1)] = set(re.findall(r"`(\w+)`", cells[-1]))
    return fields


def assert_documented(records: list[dict]) -> None:
    table = documented()
    for record in records:
        names = table[record["record"]]
        assert set(record) - {"record"} <= names, (record["record"], set(record) - names)
        for line in record.get("credentials", []):
            assert set(line) <= names, set(line) - names


def captured(caplog, kind: str | None = None) -> list[dict]:
    found = [r.custom_dimensions for r in caplog.records if hasattr(r, "custom_dimensions")]
    for r in caplog.records:
        if hasattr(r, "custom_dimensions"):
            assert json.loads(r.getMessage()) == r.custom_dimensions
    return [f for f in found if kind is None or f["record"] == kind]


# --- dip-edge serve --log-format json ------------------------------------------------------


@pytest.fixture(scope="module")
def atlas():
    with FakeAtlas() as fake:
        fake.leaf = fake.new_client_certificate("acme-atlas-telemetry")
        fake.add_account(API_KEY, API_SECRET, fake.leaf)
        yield fake


def submission(atlas, **overrides) -> dict:
    pfx = base64.b64encode(atlas.leaf.pfx(PASSWORD.encode())).decode()
    return {"apiKey": API_KEY, "apiSecret": API_SECRET, "pfx": pfx, "pfxPassword": PASSWORD,
            **overrides}


def delivery_file(path: Path, *txids: str) -> Path:
    path.write_text(json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": "IF-033"},
        "D0": {"transactionID": t, "transactionTimestamp": "2026-01-01T00:00:00.000Z"}}}}
        for t in txids]))
    return path


@pytest.fixture(scope="module")
def serve_log(dip_pki, atlas, tmp_path_factory):
    """One serve run in JSON: two deliveries (one a redelivery), a refused certificate, a
    stored credential set and a rejected validation. Returns (lines, raw text, secrets)."""
    directory = tmp_path_factory.mktemp("telemetry")
    client, client_key = write_pem(directory, "client", dip_pki.client)
    signer, signer_key = write_pem(directory, "signer", dip_pki.signer)
    stranger, stranger_key = write_pem(directory, "stranger", dip_pki.stranger)
    served = start_serve(directory / "state", {**dip_pki.env(), **atlas.env(),
                                               "ATLAS_MAX_RETRIES": "0"},
                         "--log-format", "json")
    try:
        url = served.base_url + "/api/webhooks/dip/pub-033"
        body = delivery_file(directory / "delivery.json", "tx-tel-1", "tx-tel-2")
        for cert, key in ((client, client_key), (client, client_key), (stranger, stranger_key)):
            cli("send", url, str(body), "--ca", str(served.ca), "--cert", str(cert),
                "--key", str(key), "--sign-cert", str(signer), "--sign-key", str(signer_key))
        function_key = (served.state_dir / "function-key").read_text().strip()
        headers = {"x-functions-key": function_key, "X-MS-CLIENT-PRINCIPAL-NAME": PRINCIPAL,
                   "X-MS-CLIENT-PRINCIPAL-ID": PRINCIPAL_ID}
        with tls_client(served, client, client_key) as http:
            stored = http.post(served.base_url + "/api/credentials", json=submission(atlas),
                               headers=headers)
            refused = http.post(served.base_url + "/api/credentials/validate",
                                json=submission(atlas, pfxPassword="wrong-" + PASSWORD),
                                headers=headers)
        assert (stored.status_code, refused.status_code) == (201, 422), stored.text
    finally:
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(20)
        stop(served)
    text = served.stderr()
    lines = [json.loads(line) for line in text.splitlines()
             if line and not line.startswith(SERVE_PRINTS)]
    secrets = [API_SECRET, PASSWORD, function_key, submission(atlas)["pfx"],
               dip_pki.client.key_pem().decode().splitlines()[1],
               dip_pki.signer.key_pem().decode().splitlines()[1], header_value(dip_pki.client)]
    return lines, text, secrets


def records_of(lines: list[dict], kind: str) -> list[dict]:
    return [{k: v for k, v in line.items() if k not in ("time", "level", "logger")}
            for line in lines if line.get("record") == kind]


def test_serve_prints_every_log_record_as_one_json_line(serve_log):
    lines, text, _ = serve_log
    for line in text.splitlines():
        if line and not line.startswith(SERVE_PRINTS):
            parsed = json.loads(line)  # every other line is one JSON object
            assert {"time", "level", "logger"} <= set(parsed)
            assert "record" in parsed or "message" in parsed
    assert any(line.get("logger") == "dip_edge.devhost" for line in lines)


def test_deliveries_through_serve(serve_log, dip_pki):
    lines, _, _ = serve_log
    first, again, refused = records_of(lines, "delivery")
    client = describe(dip_pki.client.certificate).thumbprint_sha256
    assert {k: first[k] for k in ("status", "code", "accepted", "duplicates", "messages",
                                  "transactionIds", "interfaceIds", "channel",
                                  "clientThumbprint")} == {
        "status": 200, "code": None, "accepted": 2, "duplicates": 0, "messages": 2,
        "transactionIds": ["tx-tel-1", "tx-tel-2"], "interfaceIds": ["IF-033"],
        "channel": "pub-033", "clientThumbprint": client}
    assert first["signerThumbprint"] == describe(dip_pki.signer.certificate).thumbprint_sha256
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert first["durationMs"] > 0 and first["bytes"] > 0
    assert (refused["status"], refused["code"]) == (403, "clientcert.identity_mismatch")
    assert refused["clientThumbprint"] == describe(
        dip_pki.stranger.certificate).thumbprint_sha256
    levels = [line["level"] for line in lines if line.get("record") == "delivery"]
    assert levels == ["INFO", "INFO", "WARNING"]


def test_credential_records_and_the_audit_trail_through_serve(serve_log, atlas):
    lines, _, _ = serve_log
    stored, refused = records_of(lines, "credentials")
    facts = describe(atlas.leaf.certificate)
    assert {k: stored[k] for k in ("action", "outcome", "status", "codes", "thumbprint",
                                   "caller", "callerId")} == {
        "action": "submit", "outcome": "stored", "status": 201, "codes": [],
        "thumbprint": facts.thumbprint_sha1, "caller": PRINCIPAL, "callerId": PRINCIPAL_ID}
    assert stored["subject"] == facts.subject and stored["notAfter"].startswith(
        facts.not_after.date().isoformat())
    assert stored["credentialSet"]
    assert (refused["action"], refused["outcome"], refused["codes"]) == (
        "validate", "rejected", ["pfx.wrong_password"])
    audits = [line for line in lines if line.get("record") == "audit"]
    assert [a["logger"] for a in audits] == ["dip_edge.audit"] * 2
    assert [(a["action"], a["outcome"], a["caller"], a["callerId"], a["source"])
            for a in audits] == [
        ("credentials.submit", "stored", PRINCIPAL, PRINCIPAL_ID, "api"),
        ("credentials.validate", "rejected", PRINCIPAL, PRINCIPAL_ID, "api")]
    assert audits[0]["credentialSet"] == stored["credentialSet"]


def test_no_secret_header_value_body_or_function_key_in_any_record(serve_log):
    _, text, secrets = serve_log
    assert_no_secrets(text, *secrets)
    assert "tx-tel-1" in text  # the scan read the records (the IDs are there)
    assert '"CustomBlock"' not in text and "CommonBlock" not in text  # no body


def test_serve_json_records_feed_the_workbook(serve_log):
    lines, _, _ = serve_log
    records = [{k: v for k, v in line.items() if k not in ("time", "level", "logger")}
               for line in lines if "record" in line]
    queries = kql.workbook_queries()
    for title in ("Deliveries by outcome (accepted, or status and rejection code)",
                  "Webhook handling time, ms (p50, p95, p99)",
                  "Credential changes (audit trail)"):
        assert_reads_only_emitted_fields(queries[title], records)
        rows = kql.run(queries[title], [message(r) for r in records])
        assert rows, title
    assert_documented(records)  # every field of every record is in README's table
    changes = kql.run(queries["Credential changes (audit trail)"],
                      [message(r) for r in records])
    assert [r.d["action"] for r in changes] == ["credentials.submit", "credentials.validate"]


def test_serve_text_format_is_readable(dip_pki, tmp_path):
    client, client_key = write_pem(tmp_path, "client", dip_pki.client)
    signer, signer_key = write_pem(tmp_path, "signer", dip_pki.signer)
    served = start_serve(tmp_path / "state", dip_pki.env(), "--log-format", "text")
    try:
        body = delivery_file(tmp_path / "d.json", "tx-text-1")
        sent = cli("send", served.base_url + "/api/webhooks/dip", str(body), "--ca",
                   str(served.ca), "--cert", str(client), "--key", str(client_key),
                   "--sign-cert", str(signer), "--sign-key", str(signer_key))
        assert sent.returncode == 0, sent.stderr
    finally:
        stop(served)
    (line,) = [x for x in served.stderr().splitlines() if "dip_edge.webhook:" in x]
    assert " INFO dip_edge.webhook: delivery status=200 accepted=1 duplicates=0" in line
    assert 'transactionIds=["tx-text-1"]' in line and "{" not in line.split(":", 3)[-1][:20]


# --- the functions in-process, and the alert rules ----------------------------------------


def test_every_query_is_covered_by_a_test():
    names = set(kql.alert_rules()) | set(kql.workbook_queries())
    assert names == set(COVERED)
    assert len(kql.alert_rules()) == 8


def save_atlas_pfx(issued) -> None:
    from shared.certs.facts import to_passwordless_pfx
    from shared.certs.pfx_check import PfxPolicy, check_pfx
    from shared.vault import open_store
    from shared.vault.credentials import save_credentials

    settings = get_settings()
    report = check_pfx(issued.pfx(), None, PfxPolicy.from_settings(settings))
    assert report.valid, report.errors
    save_credentials(open_store(settings), settings, api_key=API_KEY, api_secret=API_SECRET,
                     pfx_passwordless=to_passwordless_pfx(report), facts=report.certificate)


def test_expiry_alerts_follow_the_latest_monitor_run(app_env, atlas, dip_pki, caplog):
    from shared.vault import open_store

    app_env(**dip_pki.env(), **atlas.env(), SECRET_NAME_TLS_CERT="webhook-tls",
            SECRET_NAME_SIGNING_CERT="dip-signing")
    store = open_store(get_settings())
    soon = atlas.new_client_certificate("acme-tls", days=20)  # warning: 20 days left
    store.set_secret("webhook-tls", soon.cert_pem().decode())
    store.set_secret("dip-signing", dip_pki.signer.cert_pem().decode())
    rules = kql.alert_rules()
    caplog.set_level(logging.INFO)

    save_atlas_pfx(atlas.new_client_certificate("acme-atlas-5d", days=5))  # error
    user_function("monitor")(TimerRequest(past_due=False))
    save_atlas_pfx(atlas.leaf)  # renewed: the next run has no error
    user_function("monitor")(TimerRequest(past_due=False))
    first, latest = captured(caplog, "monitor")
    assert_documented([first, latest])
    kinds = {c["kind"] for c in first["credentials"]}
    assert {"atlas_pfx", "tls_cert", "signing_cert", "dip_pinned"} <= kinds
    for name in ("credential-expiry-error", "credential-expiry-warning", "monitor-not-run"):
        assert_reads_only_emitted_fields(rules[name]["query"], [first, latest])
    assert_reads_only_emitted_fields(
        kql.workbook_queries()["Certificates watched by the expiry monitor (latest run)"],
        [first, latest])

    def alerted(name: str, runs: list[dict]) -> list[tuple[str, str]]:
        return [(r.c["kind"], r.c["level"])
                for r in kql.run(rules[name]["query"], [message(x) for x in runs])]

    assert ("atlas_pfx", "error") in alerted("credential-expiry-error", [first])
    assert alerted("credential-expiry-error", [first, latest]) == []  # the latest run counts
    assert alerted("credential-expiry-warning", [first, latest]) == [("tls_cert", "warning")]
    # "Not run": the query's record filter sees each run (the 26 h test is Azure's clock).
    assert len(kql.run(rules["monitor-not-run"]["query"], [message(latest)])) == 1
    assert "ago(26h)" in rules["monitor-not-run"]["query"]
    assert_no_secrets(caplog.text, API_SECRET, atlas.leaf.key_pem().decode().splitlines()[1])


@pytest.fixture
def webhook_env(app_env, dip_pki, tmp_path):
    app_env(**dip_pki.env())
    return tmp_path / "state"


def post(dip_pki, txid: str, client=None):
    body = json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": "IF-034"},
        "D0": {"transactionID": txid, "transactionTimestamp": "2026-01-01T00:00:00.000Z"}}}}
    ]).encode()
    url = "https://dip-edge.example/api/webhooks/dip"
    headers = {"Content-Type": "application/json",
               "X-ARR-ClientCert": header_value(client or dip_pki.client),
               **dip_pki.sign("POST", url, body)}
    return call_http("dip_webhook", "POST", url, body=body, headers=headers)


def test_inbox_failures_drive_the_5xx_rate_alert(webhook_env, dip_pki, caplog):
    caplog.set_level(logging.INFO)
    for i in range(10):
        assert post(dip_pki, f"tx-ok-{i}").status_code == 200
    db = sqlite3.connect(webhook_env / "inbox.sqlite3")
    db.execute("CREATE TRIGGER fail BEFORE INSERT ON messages "
               "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    db.commit()
    assert [post(dip_pki, f"tx-bad-{i}").status_code for i in range(2)] == [503, 503]
    db.close()
    deliveries = captured(caplog, "delivery")
    assert_documented(captured(caplog))
    rule = kql.alert_rules()["webhook-5xx-rate"]["query"]
    assert_reads_only_emitted_fields(rule, deliveries)
    failing = kql.countif(rule)

    def fires(records: list[dict]) -> bool:  # the rule's summarize, at the defaults
        rows = kql.run(rule, [message(r) for r in records])
        failed = sum(1 for r in rows if failing(r))
        return len(rows) >= 10 and 100.0 * failed / len(rows) > 5

    assert fires(deliveries)
    assert not fires(deliveries[:10])  # all accepted
    assert [d["code"] for d in deliveries[10:]] == ["inbox.unavailable"] * 2
    assert all(d["retryAfter"] for d in deliveries[10:])
    dependency = captured(caplog, "dependency")
    assert {(d["dependency"], d["code"]) for d in dependency} == {("inbox",
                                                                   "inbox.unavailable")}


def test_rejections_by_code_alert(webhook_env, dip_pki, caplog):
    caplog.set_level(logging.INFO)
    assert post(dip_pki, "tx-fine").status_code == 200
    for i in range(11):
        assert post(dip_pki, f"tx-{i}", client=dip_pki.stranger).status_code == 403
    deliveries = captured(caplog, "delivery")
    rule = kql.alert_rules()["webhook-rejections"]["query"]
    assert_reads_only_emitted_fields(rule, deliveries)
    rows = kql.run(rule, [message(r) for r in deliveries])
    by_code: dict[str, int] = {}
    for r in rows:
        by_code[r.d["code"]] = by_code.get(r.d["code"], 0) + 1
    assert by_code == {"clientcert.identity_mismatch": 11}  # > 10: fires
    assert kql.run(rule, [message(deliveries[0])]) == []


def test_conflicting_redelivery_alert(webhook_env, dip_pki, caplog):
    caplog.set_level(logging.INFO)
    assert post(dip_pki, "tx-same").status_code == 200
    body = json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": "IF-034"},
        "D0": {"transactionID": "tx-same", "transactionTimestamp": "2026-01-01T00:00:00.000Z"}},
        "CustomBlock": {"changed": True}}}]).encode()
    url = "https://dip-edge.example/api/webhooks/dip"
    answer = call_http("dip_webhook", "POST", url, body=body, headers={
        "Content-Type": "application/json", "X-ARR-ClientCert": header_value(dip_pki.client),
        **dip_pki.sign("POST", url, body)})
    first, second = captured(caplog, "delivery")
    rule = kql.alert_rules()["conflicting-redelivery"]["query"]
    assert_reads_only_emitted_fields(rule, [first, second])
    assert kql.run(rule, [message(first)]) == []
    assert json.loads(answer.get_body())["conflicts"] == 1
    (row,) = kql.run(rule, [message(first), message(second)])
    assert row.d["conflicts"] == 1


@pytest.mark.azurite
def test_poisoned_events_alert(app_env, azurite, atlas, caplog):
    from tests.support.eventgrid import deliver, enqueue, key_vault_event

    queue = f"tel-{uuid.uuid4().hex[:12]}"
    app_env(EVENTS_STORAGE=azurite.connection_string, EVENTS_QUEUE=queue,
            REPORTS_CONTAINER=f"rep-{queue}", ATLAS_MAX_RETRIES="0", **atlas.env())
    save_atlas_pfx(atlas.leaf)
    from shared.vault import open_store

    version = open_store(get_settings()).set_secret(
        get_settings().secret_name_pfx, base64.b64encode(atlas.leaf.pfx()).decode(),
        content_type="application/x-pkcs12").version
    enqueue(azurite.connection_string, queue, key_vault_event(
        "SecretNewVersionCreated", get_settings().secret_name_pfx, version,
        vault_url="https://dip-edge-kv.vault.azure.net"))
    atlas.busy(times=100, path="/login")
    caplog.set_level(logging.INFO)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the queue's retry
            deliver(azurite.connection_string, queue, dequeue_count=1, delete=False)
        deliver(azurite.connection_string, queue, dequeue_count=5)
    finally:
        atlas.reset()
    events = captured(caplog, "event")
    assert [(e["outcome"], e["dequeueCount"]) for e in events] == [("retry", 1),
                                                                   ("poisoned", 5)]
    assert events[1]["codes"] == ["globalsign.unavailable"]
    rule = kql.alert_rules()["events-poisoned"]["query"]
    assert_reads_only_emitted_fields(rule, events)
    (row,) = kql.run(rule, [message(e) for e in events])
    assert row.d["outcome"] == "poisoned"
    outages = captured(caplog, "dependency")
    assert {d["dependency"] for d in outages} == {"atlas"}
    # Atlas back: the same event again validates the version, an audited credential change.
    enqueue(azurite.connection_string, queue, key_vault_event(
        "SecretNewVersionCreated", get_settings().secret_name_pfx, version,
        vault_url="https://dip-edge-kv.vault.azure.net"))
    deliver(azurite.connection_string, queue)
    (change,) = captured(caplog, "audit")
    assert {k: change[k] for k in ("action", "source", "outcome", "version", "thumbprint")} == {
        "action": "credentials.new_version", "source": "keyvault", "outcome": "passed",
        "version": version, "thumbprint": describe(atlas.leaf.certificate).thumbprint_sha1}
    assert captured(caplog, "event")[-1]["outcome"] == "passed"
    assert_documented(captured(caplog))
    assert_no_secrets(caplog.text, API_SECRET, atlas.leaf.key_pem().decode().splitlines()[1])


def test_dependency_outage_alert(app_env, atlas, fake_keyvault, caplog):
    rules = kql.alert_rules()
    caplog.set_level(logging.INFO)
    app_env(**atlas.env(), ATLAS_MAX_RETRIES="0")
    atlas.busy(times=100, path="/login")
    try:
        for _ in range(2):
            answer = call_http("credentials_validate", "POST",
                               "https://ops.example/api/credentials/validate",
                               body=json.dumps(submission(atlas)).encode(),
                               headers={"Content-Type": "application/json"})
            assert answer.status_code == 503
    finally:
        atlas.reset()
    app_env(**fake_keyvault.env())
    fake_keyvault.down = True
    for _ in range(2):
        answer = call_http("credentials", "GET", "https://ops.example/api/credentials")
        assert answer.status_code == 503
    records = captured(caplog)
    assert_documented(records)
    outages = [r for r in records if r["record"] == "dependency"]
    assert [(o["dependency"], o["code"]) for o in outages[:2]] == [
        ("atlas", "globalsign.unavailable")] * 2
    assert {(o["dependency"], o["code"]) for o in outages[2:]} == {
        ("keyvault", "secrets.unavailable")}
    assert len(outages) >= 4
    assert_reads_only_emitted_fields(rules["dependency-outage"]["query"], outages)
    rows = kql.run(rules["dependency-outage"]["query"], [message(r) for r in records])
    assert len(rows) == len(outages)  # the rule's summarize counts them per dependency
    benign = [r for r in records if r["record"] != "dependency"]
    assert kql.run(rules["dependency-outage"]["query"], [message(r) for r in benign]) == []
    assert "lastFailure - firstFailure >= 15m" in rules["dependency-outage"]["query"]
    assert_no_secrets(caplog.text, API_SECRET, PASSWORD)


# --- the helper itself ----------------------------------------------------------------------


def test_clean_bounds_texts_lists_and_nesting():
    assert clean(["x" * 1000] * 50)[0] == "x" * 256
    assert len(clean(list(range(50)))) == MAX_ITEMS
    assert clean({"a": timedelta(seconds=1)}) == {"a": "0:00:01"}
    assert clean(1.23456) == 1.235 and clean(True) is True


def test_the_host_never_samples_the_records_away():
    # Application Insights' adaptive sampling would drop traces under load: alert counts,
    # the monitor's daily record and the audit trail must all arrive.
    host = json.loads((kql.ROOT / "host.json").read_text())
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Trace" in sampling["excludedTypes"].split(";")


def test_azure_sdk_http_logging_stays_at_warning_unless_asked(app_env, fake_keyvault, caplog):
    from shared.telemetry import AZURE_SDK_LOGGERS, configure_sdk_logging

    def sdk_records(level: str) -> list[logging.LogRecord]:
        app_env(**fake_keyvault.env(), AZURE_SDK_LOG_LEVEL=level)
        configure_sdk_logging(get_settings().azure_sdk_log_level)  # as function_app does
        caplog.clear()
        answer = call_http("credentials", "GET", "https://ops.example/api/credentials")
        assert answer.status_code == 200
        return [r for r in caplog.records if r.name.startswith("azure")]

    caplog.set_level(logging.DEBUG)
    try:
        assert sdk_records("warning") == []
        chatty = sdk_records("info")  # asked for: the SDK's request/response lines
        assert any(r.name == AZURE_SDK_LOGGERS[1] for r in chatty)
    finally:
        configure_sdk_logging("warning")
    assert all(logging.getLogger(n).level == logging.WARNING for n in AZURE_SDK_LOGGERS)


@pytest.mark.azurite
def test_an_upload_imported_as_the_current_pfx_is_audited(app_env, azurite, atlas, caplog):
    from azure.storage.blob import BlobServiceClient

    from tests.support.eventgrid import blob_created_event, deliver, enqueue

    suffix = uuid.uuid4().hex[:12]
    app_env(EVENTS_STORAGE=azurite.connection_string, EVENTS_QUEUE=f"tel-{suffix}",
            REPORTS_CONTAINER=f"rep-{suffix}", UPLOADS_CONTAINER=f"up-{suffix}",
            UPLOAD_IMPORT_TO_KEY_VAULT="true", ATLAS_MAX_RETRIES="0", **atlas.env())
    renewed = atlas.new_client_certificate("acme-atlas-renewed")
    atlas.add_account(API_KEY, API_SECRET, atlas.leaf, renewed)
    save_atlas_pfx(atlas.leaf)
    uploads = BlobServiceClient.from_connection_string(
        azurite.connection_string).get_container_client(f"up-{suffix}")
    uploads.create_container()
    data = renewed.pfx()
    etag = uploads.get_blob_client("renewal.pfx").upload_blob(data)["etag"]
    enqueue(azurite.connection_string, f"tel-{suffix}", blob_created_event(
        f"up-{suffix}", "renewal.pfx", etag=etag, length=len(data)))
    caplog.set_level(logging.INFO)
    deliver(azurite.connection_string, f"tel-{suffix}")
    (change,) = captured(caplog, "audit")
    assert {k: change[k] for k in ("action", "source", "outcome", "thumbprint",
                                   "previousThumbprint")} == {
        "action": "credentials.import", "source": "upload", "outcome": "stored",
        "thumbprint": describe(renewed.certificate).thumbprint_sha1,
        "previousThumbprint": describe(atlas.leaf.certificate).thumbprint_sha1}
    assert change["credentialSet"]
    (event,) = captured(caplog, "event")
    assert (event["eventType"], event["action"], event["outcome"]) == (
        "Microsoft.Storage.BlobCreated", "validated", "passed")
    assert_documented(captured(caplog))
    assert_no_secrets(caplog.text, API_SECRET, renewed.key_pem().decode().splitlines()[1])
