"""Every function through Microsoft's Python worker (``azure-functions-runtime``), called
with the Functions host's protocol messages: indexing, the bindings the host reads, and
invocations with ``RpcHttp``, queue-message and timer ``TypedData``."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shared.devhost.language_worker import FunctionFailed
from shared.dip.inbox.sqlite import SqliteInbox
from shared.services.monitor import latest_report
from shared.settings import get_settings
from tests.support.functions import functions
from tests.support.leaks import assert_no_secrets
from tests.support.worker import ROOT, call_http, worker
from tests.test_credentials_api import Account

WEBHOOK = "https://dip-edge.example.net/api/webhooks/dip"
CREDENTIALS = "https://dip-edge.example.net/api/credentials"


def trigger(name: str) -> dict:
    return worker().functions[name].trigger


# -- indexing: what the host learns from the worker ---------------------------------------


def test_the_worker_indexes_every_declared_function():
    assert set(worker().functions) == set(functions())
    for metadata in worker().metadata_response.function_metadata_results:
        assert metadata.language == "python" and metadata.script_file.endswith(
            "function_app.py")
        assert metadata.properties["worker_indexed"] == "True"


def test_worker_init_announces_the_capabilities_the_body_handling_relies_on():
    capabilities = worker().init_response.capabilities
    assert capabilities["RawHttpBodyBytes"] == "true"  # the body arrives as bytes
    assert capabilities["RpcHttpBodyOnly"] == "true"
    assert worker().init_response.worker_metadata.runtime_version == "3.13"


@pytest.mark.parametrize("name, route, methods, auth", [
    ("health", "health", ["GET"], "ANONYMOUS"),
    ("credentials_validate", "credentials/validate", ["POST"], "FUNCTION"),
    ("credentials", "credentials", ["GET", "POST"], "FUNCTION"),
    ("portal", "portal", ["GET"], "ANONYMOUS"),
    ("dip_webhook", "webhooks/dip/{channel?}", ["POST"], "ANONYMOUS"),
])
def test_http_functions_are_indexed_with_route_methods_and_auth_level(name, route, methods,
                                                                      auth):
    bindings = worker().functions[name].bindings
    assert bindings[0] == {"direction": "IN", "type": "httpTrigger", "name": "req",
                           "methods": methods, "authLevel": auth, "route": route}
    assert bindings[1] == {"direction": "OUT", "type": "http", "name": "$return"}
    assert len(bindings) == 2


def test_events_reads_the_queue_named_by_a_setting_on_the_events_storage():
    assert worker().functions["events"].bindings == (
        {"direction": "IN", "type": "queueTrigger", "name": "msg",
         "queueName": "%EVENTS_QUEUE%", "connection": "EVENTS_STORAGE"},)


def test_monitor_runs_on_the_schedule_named_by_a_setting():
    assert worker().functions["monitor"].bindings == (
        {"direction": "IN", "type": "timerTrigger", "name": "timer",
         "schedule": "%MONITOR_SCHEDULE%", "runOnStartup": False},)


# -- HTTP through RpcHttp -----------------------------------------------------------------


def test_health(app_env, dip_pki):
    reply = call_http("health", "GET", "https://dip-edge.example.net/api/health")
    assert reply.status == 503  # no identity rules: the webhook fails closed (issue 17)
    assert json.loads(reply.body)["status"] == "misconfigured"
    app_env(**dip_pki.env())
    reply = call_http("health", "GET", "https://dip-edge.example.net/api/health")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body)["status"] in {"ok", "degraded"}


def test_portal_page_with_its_security_headers(app_env):
    reply = call_http("portal", "GET", "https://dip-edge.example.net/api/portal")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<label" in reply.body and b"PFX password" in reply.body


@pytest.fixture
def atlas_env(app_env, fake_atlas, fake_keyvault):
    app_env(**fake_atlas.env(), **fake_keyvault.env(), ATLAS_TIMEOUT_SECONDS="2",
            ATLAS_MAX_RETRIES="1", ATLAS_RETRY_BACKOFF_SECONDS="0")


def test_credentials_validate_then_submit_against_the_fake_atlas(atlas_env, fake_atlas,
                                                                fake_keyvault, caplog):
    caplog.set_level(logging.INFO)
    account = Account(fake_atlas, f"acme-worker-{uuid.uuid4().hex[:6]}")
    body = json.dumps(account.json()).encode()
    headers = {"Content-Type": "application/json"}
    validated = call_http("credentials_validate", "POST", CREDENTIALS + "/validate",
                          body=body, headers=headers)
    assert validated.status == 200, validated.body
    assert json.loads(validated.body)["valid"] is True
    assert not fake_keyvault.secrets  # validate stores nothing

    submitted = call_http("credentials", "POST", CREDENTIALS, body=body, headers=headers)
    assert submitted.status == 201, submitted.body
    assert json.loads(submitted.body)["status"] == "Added successfully"
    described = json.loads(call_http("credentials", "GET", CREDENTIALS).body)
    assert described["credentials"]["thumbprint"] == account.thumbprint
    assert fake_atlas.logins() == 2
    assert_no_secrets(caplog.text + (validated.body + submitted.body).decode(),
                      account.api_secret)


def test_a_refused_submission_is_a_problem_document(atlas_env, fake_atlas):
    account = Account(fake_atlas, f"acme-worker-{uuid.uuid4().hex[:6]}")
    body = json.dumps(account.json(apiSecret="not-the-secret-" + "0" * 24)).encode()
    reply = call_http("credentials", "POST", CREDENTIALS, body=body,
                      headers={"Content-Type": "application/json"})
    assert reply.status == 422, reply.body
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert "globalsign.invalid_credentials" in [e["code"] for e in json.loads(reply.body)
                                                 ["errors"]]


@pytest.fixture
def webhook_env(app_env, dip_pki, tmp_path):
    app_env(**dip_pki.env())
    return tmp_path / "state"


def delivery(txid: str) -> bytes:
    return json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": "IF-033", "schemaVersion": "011"},
        "D0": {"transactionID": txid, "publicationID": "PUB-033", "replayIndicator": False,
               "transactionTimestamp": "2026-01-01T10:00:00.000Z"}},
        "CustomBlock": {"reading": 42}}}]).encode()


def deliver(dip_pki, body: bytes, url: str, route_params: dict, *, signed_body=None):
    headers = {"Content-Type": "application/json", "X-ARR-ClientCert": dip_pki.client_header(),
               **dip_pki.sign("POST", url, body if signed_body is None else signed_body)}
    return call_http("dip_webhook", "POST", url, body=body, headers=headers,
                     route_params=route_params)


def stored(state) -> dict:
    inbox = SqliteInbox(state / "inbox.sqlite3")
    try:
        return {m.transaction_id: m.channel for m in inbox.list()}
    finally:
        inbox.close()


def test_a_signed_delivery_is_accepted_on_the_channel_route(webhook_env, dip_pki):
    reply = deliver(dip_pki, delivery("tx-w1"), f"{WEBHOOK}/pub-033", {"channel": "pub-033"})
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["transactionIds"] == ["tx-w1"]
    assert stored(webhook_env) == {"tx-w1": "pub-033"}


def test_the_bare_route_has_no_channel(webhook_env, dip_pki):
    # The host sends no "channel" in RpcHttp.params when the optional segment is absent.
    reply = deliver(dip_pki, delivery("tx-w2"), WEBHOOK, {})
    assert reply.status == 200, reply.body
    assert stored(webhook_env) == {"tx-w2": None}


def test_concurrent_deliveries_from_many_threads_are_all_stored(webhook_env, dip_pki):
    """As ``dip-edge serve`` calls it: one invocation per connection thread at once."""
    from concurrent.futures import ThreadPoolExecutor

    txids = [f"tx-c{n}" for n in range(16)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda t: deliver(dip_pki, delivery(t), WEBHOOK, {}), txids))
    assert [r.status for r in replies] == [200] * 16
    assert [json.loads(r.body)["transactionIds"] for r in replies] == [[t] for t in txids]
    assert set(stored(webhook_env)) == set(txids)


def test_a_tampered_delivery_is_refused_and_not_stored(webhook_env, dip_pki):
    original = delivery("tx-w3")
    reply = deliver(dip_pki, original.replace(b"42", b"43"), WEBHOOK, {},
                    signed_body=original)
    assert reply.status == 403
    assert json.loads(reply.body)["code"] == "signature.content_hash_mismatch"
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert stored(webhook_env) == {}


def test_a_json_body_sent_as_string_typed_data_reads_the_same(webhook_env, dip_pki):
    """Whether the host puts a JSON body in ``bytes``, ``string`` or ``json``, the function
    reads the same UTF-8 bytes, so the content hash still matches."""
    p = worker().protos
    body = delivery("tx-w4")
    headers = {"Content-Type": "application/json", "X-ARR-ClientCert": dip_pki.client_header(),
               **dip_pki.sign("POST", WEBHOOK, body)}
    for kind in ("string", "json"):
        http = p.RpcHttp(method="POST", url=WEBHOOK, headers=headers,
                         body=p.TypedData(**{kind: body.decode()}))
        returned = worker().invoke("dip_webhook", p.TypedData(http=http)).return_value.http
        assert returned.status_code == "200", returned.body
    assert stored(webhook_env) == {"tx-w4": None}


# -- timer TypedData ------------------------------------------------------------------------


def test_monitor_through_a_timer_invocation_keeps_its_report(app_env, caplog):
    caplog.set_level(logging.INFO)
    assert latest_report(get_settings()) is None
    worker().invoke_timer("monitor", past_due=True)
    report = latest_report(get_settings())
    assert report is not None and report["level"] in {"ok", "warning", "error"}
    (run,) = [r.custom_dimensions for r in caplog.records if r.name == "dip_edge.monitor"]
    assert (run["record"], run["level"]) == ("monitor", report["level"])
    # and the credentials API shows it, through the worker too
    shown = json.loads(call_http("credentials", "GET", CREDENTIALS).body)
    assert shown["monitor"] == report


def test_a_function_that_raises_is_a_failed_invocation_naming_the_type(app_env):
    app_env(DIP_EDGE_STATE_DIR="/proc/dip-edge-cannot-be-here")
    with pytest.raises(FunctionFailed) as failed:
        worker().invoke_timer("monitor")
    assert failed.value.exception_type and str(failed.value) == (
        f"function monitor failed with {failed.value.exception_type}")


# -- the worker and the local adapter agree on this app's requests --------------------------


@pytest.mark.parametrize("name, method, url, headers, body, route_params", [
    ("dip_webhook", "post", WEBHOOK, {"content-type": "application/json"}, b"\xff\xfe", {}),
    ("dip_webhook", "POST", f"{WEBHOOK}/a%20b", {"Content-Type": "text/plain"}, b"x",
     {"channel": "a b"}),
    ("credentials", "GET", CREDENTIALS + "?x=1&x=2", {}, b"", {}),
    ("credentials", "PATCH", CREDENTIALS, {}, b"", {}),
    ("credentials_validate", "POST", CREDENTIALS + "/validate",
     {"Content-Type": "application/json"}, b"{", {}),
])
def test_the_worker_and_the_adapter_give_the_same_answer(app_env, name, method, url,
                                                        headers, body, route_params):
    """``dip-edge serve`` keeps its adapter for machines without the worker: for this
    app's functions both must convert requests and responses alike."""
    from urllib.parse import parse_qsl, urlsplit

    from shared.devhost.functions import FunctionTable
    from shared.devhost.invoke import HostRequest, _adapt

    class App:  # get_functions() may be called once per app: reuse the suite's call
        def get_functions(self):
            return list(functions().values())

    routes = {r.name: r for r in FunctionTable.load(App(), ROOT / "host.json").routes}
    query = dict(parse_qsl(urlsplit(url).query))
    adapted = _adapt(routes[name], HostRequest(method, url, headers, query, route_params,
                                               body))
    reply = call_http(name, method, url, body=body, headers=headers,
                      route_params=route_params)
    assert (reply.status, reply.headers, reply.body) == (
        adapted.status, dict(adapted.headers), adapted.body)


def test_the_worker_leaves_function_app_to_the_process(tmp_path):
    """Started first in a fresh process, the worker keeps its import of function_app to
    itself: the process can still import and index the app (get_functions() may be called
    once per app object)."""
    import os
    import subprocess
    import sys

    code = ("from pathlib import Path; from shared.devhost.language_worker import "
            "language_worker; w = language_worker(Path('.')); import function_app; "
            "print(len(function_app.app.get_functions()), len(w.functions))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "DIP_EDGE_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    declared = str(len(functions()))  # every function of function_app.py, both times
    assert done.stdout.split() == [declared, declared]
