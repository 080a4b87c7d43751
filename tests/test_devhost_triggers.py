"""The local host's timer and queue workers: built from function_app's bindings, fed by a
real Azurite queue, and the whole loop through ``dip-edge serve``."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from shared.devhost.functions import max_dequeue_count
from shared.devhost.queue_poller import QueuePoller
from shared.devhost.timer import TimerWorker
from shared.devhost.triggers import trigger_workers
from shared.settings import get_settings
from shared.storage.connection import queue_client
from tests.support.eventgrid import blob_created_event, enqueue, poison_messages
from tests.support.functions import functions

ROOT = Path(__file__).resolve().parents[1]
DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))


def table():
    everything = functions()
    return SimpleNamespace(others={n: everything[n] for n in ("monitor", "events")},
                           max_dequeue_count=max_dequeue_count(ROOT / "host.json"))


@pytest.fixture
def env(app_env, monkeypatch):
    for name in ("EVENTS_STORAGE", "MONITOR_SCHEDULE"):
        monkeypatch.delenv(name, raising=False)
    return app_env


def test_workers_follow_the_bindings_and_settings(env, caplog):
    workers = trigger_workers(get_settings(), table())
    assert [type(w) for w in workers] == [TimerWorker]  # no EVENTS_STORAGE: no queue
    assert workers[0].schedule.hours == (6,)  # MONITOR_SCHEDULE's default, 0 0 6 * * *
    env(MONITOR_SCHEDULE="0 */10 * * * *", EVENTS_STORAGE="UseDevelopmentStorage=true",
        EVENTS_QUEUE="my-events")
    timer, poller = trigger_workers(get_settings(), table())
    assert timer.schedule.minutes == (0, 10, 20, 30, 40, 50)
    assert (poller.name, poller.queue, poller.max_dequeue_count) == ("events", "my-events", 5)
    env(MONITOR_SCHEDULE="daily please")
    with caplog.at_level(logging.ERROR):
        assert [type(w) for w in trigger_workers(get_settings(), table())] == [QueuePoller]
    assert "timer function monitor not started" in caplog.text and "6 fields" in caplog.text


def test_max_dequeue_count_matches_host_json(tmp_path):
    from shared.events.handler import MAX_DEQUEUE_COUNT

    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT
    # The local host reads host.json itself (the events handler keeps its own copy).
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"maxDequeueCount": 3}}}')
    assert max_dequeue_count(tmp_path / "host.json") == 3
    assert max_dequeue_count(tmp_path / "absent.json") == 5  # the host's default


def run_until(worker, condition, timeout: float = 15.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.azurite
def test_the_poller_moves_a_message_that_keeps_failing_to_poison_unchanged(env, azurite):
    queue = f"ev-{uuid.uuid4().hex[:12]}"
    env(EVENTS_STORAGE=azurite.connection_string)
    settings = get_settings()
    enqueue(azurite.connection_string, queue, {"id": "x"})
    seen = []

    def failing(message):
        seen.append(message.dequeue_count)
        raise RuntimeError("always")

    poller = QueuePoller("events", lambda q: queue_client(settings, q, base64_messages=False),
                         queue, failing, retry_delay=0)
    raw = QueueClient.from_connection_string(azurite.connection_string, f"{queue}-poison")
    run_until(poller, lambda: len(seen) >= 5 and _count(raw) == 1)
    assert seen == [1, 2, 3, 4, 5]
    (moved,) = raw.peek_messages()
    assert json.loads(base64.b64decode(moved.content)) == {"id": "x"}  # as it was
    assert _count(QueueClient.from_connection_string(azurite.connection_string, queue)) == 0


def _count(client) -> int:
    try:
        return len(client.peek_messages(max_messages=32))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.azurite
@pytest.mark.parametrize("through_worker", [False, True], ids=["direct", "worker"])
def test_the_poller_feeds_the_events_function(env, azurite, caplog, through_worker):
    from tests.support.worker import worker

    suffix = uuid.uuid4().hex[:12]
    queue, reports, uploads = f"ev-{suffix}", f"rep-{suffix}", f"up-{suffix}"
    env(EVENTS_STORAGE=azurite.connection_string, EVENTS_QUEUE=queue,
        REPORTS_CONTAINER=reports, UPLOADS_CONTAINER=uploads)
    (_, poller) = trigger_workers(get_settings(), table(),
                                  worker() if through_worker else None)
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs.create_container(uploads)
    etag = blobs.get_blob_client(uploads, "empty.pfx").upload_blob(b"")["etag"]
    enqueue(azurite.connection_string, queue,
            blob_created_event(uploads, "empty.pfx", etag=etag, length=0))
    container = blobs.get_container_client(reports)
    run_until(poller, lambda: container.exists() and any(container.list_blobs()))
    (name,) = [b.name for b in container.list_blobs()]
    report = json.loads(container.download_blob(name).readall())
    assert report["errors"][0]["code"] == "pfx.missing"
    assert poison_messages(azurite.connection_string, queue) == []


@pytest.mark.azurite
def test_serve_runs_the_monitor_timer_and_the_events_queue(tmp_path, azurite):
    """The whole loop on one machine: ``dip-edge serve`` with Azurite configured."""
    suffix = uuid.uuid4().hex[:12]
    queue, reports, uploads = f"ev-{suffix}", f"rep-{suffix}", f"up-{suffix}"
    env = {**os.environ, "EVENTS_STORAGE": azurite.connection_string, "EVENTS_QUEUE": queue,
           "REPORTS_CONTAINER": reports, "UPLOADS_CONTAINER": uploads,
           "MONITOR_SCHEDULE": "* * * * * *", "SECRET_STORE": "local"}
    env.pop("KEY_VAULT_URL", None)
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs.create_container(uploads)
    etag = blobs.get_blob_client(uploads, "huge.pfx").upload_blob(b"0" * (1024 * 1024 + 1))[
        "etag"]
    enqueue(azurite.connection_string, queue,
            blob_created_event(uploads, "huge.pfx", etag=etag, length=1024 * 1024 + 1))
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([DIP_EDGE, "serve", "--port", "0", "--state-dir",
                                    str(tmp_path / "state")], stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=env)
    container = blobs.get_container_client(reports)
    try:
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline and not (
                "monitor/latest.json" in names and any(n.startswith("uploads/") for n in names)):
            time.sleep(0.2)
            names = {b.name for b in container.list_blobs()} if container.exists() else set()
            assert process.poll() is None, log.read_text()
    finally:
        process.terminate()
        process.wait(10)
    assert "monitor/latest.json" in names, log.read_text()
    for name in ("monitor", "events"):  # both as invocations of Microsoft's worker
        assert f"function {name} runs through the Python worker" in log.read_text()
    (upload_report,) = [n for n in names if n.startswith("uploads/")]
    report = json.loads(container.download_blob(upload_report).readall())
    assert report["errors"][0]["code"] == "pfx.too_large"
    assert not blobs.get_blob_client(uploads, "huge.pfx").exists()
