"""Finding the event storage: connection string, account URL, or the host's identity-based
``EVENTS_STORAGE__*`` settings (what infra/ deploys)."""

from __future__ import annotations

import pytest

from shared.problems import DipEdgeError
from shared.settings import load_settings
from shared.storage.connection import Connection, connection

BLOB = "https://acct.blob.core.windows.net"
QUEUE = "https://acct.queue.core.windows.net"


@pytest.mark.parametrize("value, environ, expected", [
    ("UseDevelopmentStorage=true", {}, Connection(connection_string="UseDevelopmentStorage=true")),
    (BLOB + "/", {}, Connection(blob_url=BLOB, queue_url=QUEUE)),
    (QUEUE, {}, Connection(blob_url=BLOB, queue_url=QUEUE)),
    ("", {"EVENTS_STORAGE__blobServiceUri": BLOB, "EVENTS_STORAGE__queueServiceUri": QUEUE},
     Connection(blob_url=BLOB, queue_url=QUEUE)),
    ("", {"EVENTS_STORAGE__queueServiceUri": QUEUE}, Connection(blob_url=BLOB, queue_url=QUEUE)),
    ("", {"EVENTS_STORAGE__accountName": "acct"}, Connection(blob_url=BLOB, queue_url=QUEUE)),
    ("", {}, None),
])
def test_connection(value, environ, expected):
    settings = load_settings({"EVENTS_STORAGE": value})
    assert connection(settings, environ) == expected


def test_without_event_storage_reports_are_files_and_uploads_cannot_be_read(app_env,
                                                                           monkeypatch,
                                                                           caplog):
    """Locally (no Azurite) Key Vault events still work, reporting to the state dir; an
    upload event needs the storage, so it is retried as a misconfiguration."""
    import json

    import azure.functions.queue as queue_types

    from shared.settings import get_settings
    from tests.support.eventgrid import blob_created_event
    from tests.support.functions import user_function

    for name in ("EVENTS_STORAGE", "EVENTS_STORAGE__blobServiceUri",
                 "EVENTS_STORAGE__queueServiceUri", "EVENTS_STORAGE__accountName"):
        monkeypatch.delenv(name, raising=False)
    app_env()
    events = user_function("events")
    events(queue_types.QueueMessage(id="m", body=b"{}", dequeue_count=1))
    (report,) = (get_settings().state_dir / "reports" / "invalid").iterdir()
    assert json.loads(report.read_text())["errors"][0]["code"] == "event.malformed"
    upload = json.dumps(blob_created_event("pfx-uploads", "a.pfx", etag="1", length=3))
    with pytest.raises(DipEdgeError) as raised:
        events(queue_types.QueueMessage(id="u", body=upload, dequeue_count=1))
    assert raised.value.code == "config.invalid"
    assert "EVENTS_STORAGE is not set" in caplog.text


def test_an_unusable_connection_string_is_a_configuration_error(app_env, caplog):
    """Not a 500 from GET /api/credentials, not an unexpected error for the events queue;
    and the value (which holds the account key) is never echoed."""
    import json

    import azure.functions.queue as queue_types

    from tests.support.eventgrid import blob_created_event
    from tests.support.functions import call_http, user_function

    secret = "AccountKey=c2VjcmV0LWFjY291bnQta2V5"
    app_env(EVENTS_STORAGE=f"NotAStorageSetting=1;{secret}")
    response = call_http("credentials", "GET", "/api/credentials")
    assert response.status_code == 200, response.get_body()
    assert json.loads(response.get_body())["monitor"] is None
    upload = json.dumps(blob_created_event("pfx-uploads", "a.pfx", etag="1", length=3))
    with pytest.raises(DipEdgeError) as raised:
        user_function("events")(queue_types.QueueMessage(id="u", body=upload, dequeue_count=1))
    assert raised.value.code == "config.invalid"
    assert "c2VjcmV0" not in caplog.text + str(raised.value) + response.get_body().decode()
