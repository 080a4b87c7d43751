"""The Blob inbox when storage misbehaves: Azurite behind the TCP proxy (tests/support/proxy.py).

Every failure is ``inbox.unavailable`` within the budget (a short one here, 2 s), nothing
acknowledged is lost, and the DIP's retry stores the rest without storing anything twice.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from shared.dip.envelope import parse_delivery
from shared.dip.inbox import DUPLICATE, NEW, Receipt
from shared.dip.inbox.blob import BlobInbox
from shared.problems import DipEdgeError
from tests.support.azurite import KEY, connection_string
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.azurite

RECEIPT = Receipt("2026-01-01T00:00:00.000Z", "pub-033", None, None)
BUDGET = 2.0
BODIES = ["xml", "xml", "json"]  # the error documents of blob, queue and table storage


def delivery(*txids: str):
    return parse_delivery(json.dumps([
        {"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"},
                                     "D0": {"transactionID": t}}}} for t in txids]).encode())


@pytest.fixture
def proxies(azurite):
    """One proxy per service (blob, queue, table)."""
    made = [TcpProxy(port) for port in (azurite.blob_port, azurite.queue_port,
                                        azurite.table_port)]
    yield made
    for proxy in made:
        proxy.close()


@pytest.fixture
def inbox(proxies):
    suffix = uuid.uuid4().hex[:12]
    box = BlobInbox.connect(connection_string(*(p.port for p in proxies)),
                            f"faults-{suffix}", f"faults{suffix}", f"faults-{suffix}",
                            timeout=BUDGET)
    box.store(delivery("tx-0"), RECEIPT)  # the container, table and queue exist
    yield box
    box.close()


def unavailable_within_budget(inbox, messages) -> DipEdgeError:
    started = time.monotonic()
    with pytest.raises(DipEdgeError) as caught:
        inbox.store(messages, RECEIPT)
    elapsed = time.monotonic() - started
    assert caught.value.code == "inbox.unavailable" and caught.value.retry_after
    assert elapsed < BUDGET + 1, elapsed
    assert KEY not in str(caught.value) and "AccountKey" not in str(caught.value)
    return caught.value


def all_stored_once(inbox, messages) -> None:
    """Every message readable with its bytes; one index record per transaction ID."""
    for m in messages:
        assert inbox.get(m.transaction_id).body == m.raw
    ids = [m.transaction_id for m in inbox.list()]
    assert len(ids) == len(set(ids))
    assert all(m.conflicts == 0 for m in inbox.list())


@pytest.mark.parametrize("service", [0, 1, 2], ids=["blob", "queue", "table"])
@pytest.mark.parametrize("fault", ["stall", "refuse"])
def test_stalled_or_refused_storage_is_unavailable_within_the_budget(
        inbox, proxies, service, fault):
    messages = delivery("tx-1", "tx-2")
    getattr(proxies[service], fault)()
    try:
        unavailable_within_budget(inbox, messages)
    finally:
        proxies[service].heal()
    # The DIP's retry: whatever was written before is found, the rest stored, once.
    result = inbox.store(messages, RECEIPT)
    assert set(result.outcomes) <= {NEW, DUPLICATE} and result.conflicts == 0
    assert inbox.store(messages, RECEIPT).outcomes == (DUPLICATE, DUPLICATE)
    all_stored_once(inbox, messages)


@pytest.mark.parametrize("status, reason, code", [
    (500, "Internal Server Error", "InternalError"),
    (503, "Service Unavailable", "ServerBusy"),
    (503, "Server Busy", "ServerBusy"),
    # No error document: once an XML ParseError from the SDK, a 500 with a traceback.
    (502, "Bad Gateway", None),
])
@pytest.mark.parametrize("service", [0, 1, 2], ids=["blob", "queue", "table"])
def test_storage_answering_errors_for_good_is_unavailable_within_the_budget(
        inbox, proxies, service, status, reason, code):
    messages = delivery("tx-1", "tx-2")
    proxies[service].answer(status, reason, code=code,
                            body=BODIES[service] if code else "none")
    try:
        unavailable_within_budget(inbox, messages)
    finally:
        proxies[service].heal()
    inbox.store(messages, RECEIPT)
    all_stored_once(inbox, messages)


@pytest.mark.parametrize("service", [0, 1, 2], ids=["blob", "queue", "table"])
def test_brief_throttling_is_retried_within_the_budget(inbox, proxies, service):
    messages = delivery("tx-1", "tx-2")
    proxies[service].answer(503, "Server Busy", code="ServerBusy", count=2,
                            body=BODIES[service])
    started = time.monotonic()
    assert inbox.store(messages, RECEIPT).outcomes == (NEW, NEW)
    assert time.monotonic() - started < BUDGET
    assert proxies[service].answers_left == 0  # both were answered, and retried
    all_stored_once(inbox, messages)


def test_slow_storage_within_the_budget_is_fine(inbox, proxies):
    for proxy in proxies:
        proxy.delay(up=0.02, down=0.02)  # 40 ms round trips
    messages = delivery(*[f"slow-{i}" for i in range(150)])
    assert inbox.store(messages, RECEIPT).accepted == 150
    for proxy in proxies:
        proxy.delay()
    all_stored_once(inbox, messages)


def test_a_stall_in_the_middle_of_a_delivery(inbox, proxies):
    """The index is written, then the queue stalls: 503, and the retry completes it."""
    messages = delivery(*[f"mid-{i}" for i in range(20)])
    proxies[1].stall()
    try:
        unavailable_within_budget(inbox, messages)
    finally:
        proxies[1].heal()
    assert inbox.store(messages, RECEIPT).outcomes == (DUPLICATE,) * 20
    all_stored_once(inbox, messages)


def test_container_deleted_mid_run(inbox, azurite):
    """Deleting the container deletes what it held (soft delete can restore it); the
    inbox recreates it (where it may), and a redelivery of a lost delivery stores it again
    instead of answering "duplicate" over missing bytes."""
    from azure.storage.blob import ContainerClient

    before = delivery("tx-1", "tx-2")
    inbox.store(before, RECEIPT)
    ContainerClient.from_connection_string(
        azurite.connection_string, inbox._container.container_name).delete_container()
    after = delivery("tx-3")
    deadline = time.monotonic() + 30  # Azurite, like Azure, may refuse a deleted name briefly
    while True:
        try:
            assert inbox.store(after, RECEIPT).outcomes == (NEW,)
            break
        except DipEdgeError as err:
            assert err.code == "inbox.unavailable" and time.monotonic() < deadline
            time.sleep(0.5)
    assert inbox.get("tx-1").body is None  # gone with the container
    assert inbox.store(before, RECEIPT).outcomes == (DUPLICATE, DUPLICATE)
    all_stored_once(inbox, before + after)
    # tx-0's delivery is lost too; a later delivery holding tx-0 re-points its index.
    assert inbox.store(delivery("tx-0", "tx-4"), RECEIPT).outcomes == (DUPLICATE, NEW)
    all_stored_once(inbox, delivery("tx-0", "tx-4"))


def test_queue_deleted_mid_run(inbox, azurite):
    from azure.storage.queue import QueueClient

    QueueClient.from_connection_string(
        azurite.connection_string, inbox._queue.queue_name).delete_queue()
    messages = delivery("tx-1")
    assert inbox.store(messages, RECEIPT).outcomes == (NEW,)
    all_stored_once(inbox, messages)


def test_table_deleted_mid_run(inbox, azurite):
    """Deleting the index forgets which transaction IDs are stored (the deliveries' blobs,
    and their bytes, stay); the inbox recreates the table and goes on."""
    from azure.data.tables import TableClient

    TableClient.from_connection_string(
        azurite.connection_string, inbox._table.table_name).delete_table()
    messages = delivery("tx-1", "tx-2")
    deadline = time.monotonic() + 30
    refused = 0
    while True:
        try:
            outcomes = inbox.store(messages, RECEIPT).outcomes
            break
        except DipEdgeError as err:  # a table being deleted refuses its name for a while
            assert err.code == "inbox.unavailable" and time.monotonic() < deadline
            refused += 1
            time.sleep(0.5)
    # A refused try may have indexed some IDs (one entity-group transaction per partition)
    # before failing: the retry then finds those stored, never stores them twice.
    assert outcomes == (NEW, NEW) if not refused else set(outcomes) <= {NEW, DUPLICATE}
    all_stored_once(inbox, messages)
