"""The Blob inbox (blob + table index + queue pointers) against Azurite with the real SDKs."""

from __future__ import annotations

import base64
import json
import logging
import uuid

import pytest

from shared.dip.envelope import parse_delivery
from shared.dip.inbox import CONFLICT, DUPLICATE, NEW, Receipt, open_inbox
from shared.dip.inbox.blob import (
    FILTER_KEYS,
    POINTER_LIMIT,
    QUEUE_MESSAGE_LIMIT,
    BlobInbox,
    _Delivery,
    index_keys,
    pointer_messages,
)
from shared.problems import DipEdgeError
from shared.settings import load_settings
from tests.support.azurite import KEY

pytestmark = pytest.mark.azurite

RECEIPT = Receipt("2026-01-01T00:00:00.000Z", "pub 033/é", "AB" * 32, "CD" * 32)


def delivery(*txids: str, filler: str = "", interface: str = "IF-033",
             stamp: str = "2025-06-27T10:00:00Z"):
    return parse_delivery(json.dumps([
        {"payload": {"CommonBlock": {"S0": {"interfaceID": interface},
                                     "D0": {"transactionID": t, "replayIndicator": True,
                                            "transactionTimestamp": stamp}},
                     "CustomBlock": {"filler": filler}}}
        for t in txids]).encode())


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:12]
    return f"inbox-{suffix}", f"inbox{suffix}", f"inbox-{suffix}"


def connect(azurite, names, **options) -> BlobInbox:
    return BlobInbox.connect(azurite.connection_string, *names, **options)


def pointers(azurite, queue: str) -> list[dict]:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    client = QueueClient.from_connection_string(
        azurite.connection_string, queue, message_decode_policy=TextBase64DecodePolicy())
    return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]


def announced(azurite, queue: str) -> list[str]:
    return sorted(m["transactionId"] for p in pointers(azurite, queue) for m in p["messages"])


def blob_bytes(azurite, container: str, pointer: dict, item: dict) -> bytes:
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    return client.download_blob(pointer["blob"], offset=item["offset"],
                                length=item["length"]).readall()


class Requests:
    """Every storage request the inbox makes, as (method, path) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, response) -> None:
        request = response.http_request
        self.seen.append((request.method, request.url.split("?")[0].split("/", 4)[-1]))


def test_a_delivery_is_one_blob_an_index_and_one_pointer(azurite, names):
    inbox = connect(azurite, names)
    messages = delivery("tx-1", "tx/2 é")
    result = inbox.store(messages, RECEIPT)
    assert result.outcomes == (NEW, NEW) and result.conflicts == 0

    stored = {m.transaction_id: m for m in inbox.list()}
    assert set(stored) == {"tx-1", "tx/2 é"}
    one = stored["tx/2 é"]
    assert (one.channel, one.replay_indicator, one.client_thumbprint, one.signer_thumbprint,
            one.received_at, one.conflicts) == ("pub 033/é", True, "AB" * 32, "CD" * 32,
                                                 RECEIPT.received_at, 0)
    fetched = inbox.get("tx/2 é")
    assert fetched.body == messages[1].raw and fetched.interface_id == "IF-033"
    assert fetched.copies == ()
    assert inbox.get("nope") is None

    (pointer,) = pointers(azurite, names[2])
    assert pointer["container"] == names[0] and pointer["blob"].startswith("deliveries/")
    assert (pointer["channel"], pointer["receivedAt"], pointer["part"], pointer["parts"]) == (
        "pub 033/é", RECEIPT.received_at, 1, 1)
    assert [(m["transactionId"], m["interfaceId"]) for m in pointer["messages"]] == [
        ("tx-1", "IF-033"), ("tx/2 é", "IF-033")]
    # Downstream reads each message, byte for byte, from its range of the delivery's blob.
    for item, message in zip(pointer["messages"], messages, strict=True):
        assert blob_bytes(azurite, names[0], pointer, item) == message.raw
    whole = blob_bytes(azurite, names[0], pointer, {"offset": 0, "length": None})
    assert [m.raw for m in parse_delivery(whole)] == [m.raw for m in messages]


@pytest.mark.parametrize("txid", [".", "..", "a/b\\c#d?e", "'quoted' \"id\"", "é" * 256,
                                  "😀" * 256, "%2F%", " leading space"])
def test_any_storable_transaction_id_is_stored_and_found(azurite, names, txid):
    # Table keys refuse / \ # ? and control characters and a URL drops dot segments; the
    # keys are hashes, the ID is kept whole in the entity.
    inbox = connect(azurite, names)
    messages = delivery(txid, "other")
    assert inbox.store(messages, RECEIPT).outcomes == (NEW, NEW)
    assert inbox.store(messages, RECEIPT).outcomes == (DUPLICATE, DUPLICATE)
    assert inbox.get(txid).body == messages[0].raw
    assert inbox.get(txid).transaction_id == txid
    assert sorted(m.transaction_id for m in inbox.list()) == sorted([txid, "other"])


def test_keys_are_valid_azure_table_keys():
    partition, row = index_keys("😀" * 256)
    assert len(row) == 64 and all(c in "0123456789abcdef" for c in row)
    assert partition == f"p{int(row[:8], 16) % 16}"
    assert index_keys("a")[1] != index_keys("b")[1]


def test_idempotency_is_by_transaction_id_alone_and_differing_bytes_are_conflicts(
        azurite, names, caplog):
    caplog.set_level(logging.WARNING, logger="dip_edge.inbox")
    inbox = connect(azurite, names)
    assert inbox.store(delivery("tx-1", "tx-2"), RECEIPT).outcomes == (NEW, NEW)
    later = Receipt("2026-01-02T00:00:00.000Z", "other", None, None)
    # Another transactionTimestamp (another day), another interface: once stored again.
    changed = delivery("tx-1", stamp="2025-06-28T00:00:01Z") + delivery(
        "tx-2", interface="IF-034") + delivery("tx-3")
    result = inbox.store(changed, later)
    assert result.outcomes == (CONFLICT, CONFLICT, NEW)
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 2, 2)
    warned = [r for r in caplog.records
              if getattr(r, "code", None) == "message.conflicting_redelivery"]
    assert [r.transaction_id for r in warned] == ["tx-1", "tx-2"]
    assert all(r.levelname == "WARNING" and r.transaction_id in r.getMessage() for r in warned)
    # The same delivery again: answered from the marker, the same conflicts.
    assert inbox.store(changed, later).outcomes == (CONFLICT, CONFLICT, DUPLICATE)
    # The original's bytes in another delivery: a plain duplicate.
    assert inbox.store(delivery("tx-1", "tx-9"), later).outcomes == (DUPLICATE, NEW)
    # A third version.
    assert inbox.store(delivery("tx-1", filler="third"), later).outcomes == (CONFLICT,)

    listed = {m.transaction_id: m.conflicts for m in inbox.list()}
    assert listed == {"tx-1": 2, "tx-2": 1, "tx-3": 0, "tx-9": 0}  # one record per ID
    shown = inbox.get("tx-1")
    assert shown.body == delivery("tx-1")[0].raw
    assert (shown.received_at, shown.channel, shown.conflicts) == (
        RECEIPT.received_at, RECEIPT.channel, 2)
    assert sorted(c.body for c in shown.copies) == sorted(
        [changed[0].raw, delivery("tx-1", filler="third")[0].raw])
    assert {c.channel for c in shown.copies} == {"other"}
    # Only the new messages were announced; conflicts are kept for audit, not processed.
    assert announced(azurite, names[2]) == ["tx-1", "tx-2", "tx-3", "tx-9"]


def test_a_differing_copy_within_one_delivery_is_a_conflict(azurite, names):
    inbox = connect(azurite, names)
    messages = delivery("a") + delivery("a", filler="changed") + delivery("a")
    assert inbox.store(messages, RECEIPT).outcomes == (NEW, CONFLICT, DUPLICATE)
    assert inbox.get("a").body == messages[0].raw
    assert [c.body for c in inbox.get("a").copies] == [messages[1].raw]
    assert inbox.store(messages, RECEIPT).outcomes == (DUPLICATE, CONFLICT, DUPLICATE)


def test_cost_does_not_grow_with_the_batch_and_a_redelivery_costs_two_requests(
        azurite, names):
    seen = Requests()
    inbox = connect(azurite, names, raw_response_hook=seen)
    inbox.store(delivery("warm-up"), RECEIPT)  # creates the container, table and queue
    seen.seen.clear()
    messages = delivery(*[f"tx-{i}" for i in range(300)])
    assert inbox.store(messages, RECEIPT).accepted == 300
    # One blob, one metadata write, one queue message; the index in 100-entity transactions
    # per partition (16 partitions: at most 16 + 300 // 100 of them).
    methods = [m for m, _ in seen.seen]
    assert methods.count("PUT") == 2 and len([p for _, p in seen.seen if "messages" in p]) == 1
    batches = [p for _, p in seen.seen if p.endswith("$batch")]
    assert len(batches) <= 16 + 3 and len(seen.seen) == len(batches) + 3
    seen.seen.clear()
    assert inbox.store(messages, RECEIPT).duplicates == 300
    assert [m for m, _ in seen.seen] == ["PUT", "HEAD"]  # 409, then the marker


def test_lookups_respect_azures_15_comparisons_per_filter(azurite, names):
    filters = []

    def hook(response):
        url = response.http_request.url
        if "%24filter=" in url or "$filter=" in url:
            filters.append(url)

    inbox = connect(azurite, names, raw_response_hook=hook)
    inbox.store(delivery(*[f"tx-{i}" for i in range(200)]), RECEIPT)
    # Another delivery with all of them: every chunk is looked up.
    assert inbox.store(delivery(*[f"tx-{i}" for i in range(201)]), RECEIPT).accepted == 1
    assert filters
    for url in filters:
        assert url.count("RowKey") <= FILTER_KEYS and url.count("PartitionKey") == 1


class Crash(BaseException):
    """The process dies here (raised from a response hook, after the request is done)."""


@pytest.mark.parametrize("after", ["blob", "index", "pointer"])
def test_a_crash_at_any_point_is_completed_by_the_redelivery(azurite, names, after):
    inbox = connect(azurite, names)
    inbox.store(delivery("tx-0"), RECEIPT)  # creates the container, table and queue
    messages = delivery("tx-1", "tx-2", "tx-3")

    def crash(response):
        request = response.http_request
        done = {"blob": request.method == "PUT" and "deliveries/" in request.url
                and "comp=metadata" not in request.url,
                "index": request.method == "POST" and "/messages" not in request.url,
                "pointer": "/messages" in request.url}[after]
        if done:
            raise Crash

    dying = connect(azurite, names, raw_response_hook=crash)
    with pytest.raises(Crash):
        dying.store(messages, RECEIPT)
    # The DIP got no answer and delivers again, to a fresh instance.
    result = inbox.store(messages, RECEIPT)
    if after == "blob":
        assert result.outcomes == (NEW, NEW, NEW)
    elif after == "index":  # the other partitions' writes may land before or after
        assert DUPLICATE in result.outcomes and CONFLICT not in result.outcomes
    else:
        assert result.outcomes == (DUPLICATE, DUPLICATE, DUPLICATE)
    for m in messages:
        assert inbox.get(m.transaction_id).body == m.raw
    got = announced(azurite, names[2])
    assert set(got) == {"tx-0", "tx-1", "tx-2", "tx-3"}  # at least once each
    # ... and the marker is there: the next redelivery is answered from it, no new pointer.
    assert inbox.store(messages, RECEIPT).outcomes == (DUPLICATE, DUPLICATE, DUPLICATE)
    assert announced(azurite, names[2]) == got


def test_a_duplicate_of_a_delivery_never_announced_is_announced(azurite, names):
    inbox = connect(azurite, names)
    inbox.store(delivery("tx-0"), RECEIPT)

    def crash(request):  # before the pointer is sent
        if "/messages" in request.http_request.url:
            raise Crash

    with pytest.raises(Crash):
        connect(azurite, names, raw_request_hook=crash).store(delivery("tx-1", "tx-2"),
                                                              RECEIPT)
    # The DIP gives up on that delivery; tx-1 comes again in another one.
    assert inbox.store(delivery("tx-1", "tx-5"), RECEIPT).outcomes == (DUPLICATE, NEW)
    assert announced(azurite, names[2]) == ["tx-0", "tx-1", "tx-5"]


def test_an_unexpected_failure_is_logged_by_type_and_place_never_its_message(
        azurite, names, caplog):
    """An exception the inbox does not expect (here from inside the SDK's pipeline) may
    carry a request's URL, with a SAS token, or data: the log names its type and where it
    was raised, without its message or a traceback."""
    secret = "sig=" + uuid.uuid4().hex
    inbox = connect(azurite, names)
    inbox.store(delivery("tx-0"), RECEIPT)

    def fail(request):
        if "/messages" in request.http_request.url:
            raise RuntimeError(f"{request.http_request.url}?{secret}")

    caplog.set_level(logging.INFO)
    with pytest.raises(DipEdgeError) as caught:
        connect(azurite, names, raw_request_hook=fail).store(delivery("tx-1"), RECEIPT)
    assert caught.value.code == "inbox.unavailable"
    (record,) = [r for r in caplog.records if "unexpected failure" in r.getMessage()]
    assert "RuntimeError" in record.getMessage() and " in " in record.getMessage()
    assert record.exc_info is None
    assert secret not in caplog.text and secret not in str(caught.value)


def test_a_large_message_keeps_the_pointer_small(azurite, names):
    inbox = connect(azurite, names)
    (message,) = delivery("big", filler="x" * 300_000)
    assert len(message.raw) > QUEUE_MESSAGE_LIMIT
    assert inbox.store([message], RECEIPT).outcomes == (NEW,)
    assert inbox.get("big").body == message.raw
    (pointer,) = pointers(azurite, names[2])
    assert len(json.dumps(pointer)) < 1024


def test_pointers_are_as_few_as_64_kib_allows():
    messages = delivery(*[f"{i:05d}-" + "é" * 200 for i in range(1500)])
    pack = list(pointer_messages("dip-inbox", _Delivery.of(messages, RECEIPT),
                                 range(len(messages))))
    sizes = [len(base64.b64encode(p.encode())) for p in pack]
    assert all(size <= QUEUE_MESSAGE_LIMIT for size in sizes)
    listed = [m for p in pack for m in json.loads(p)["messages"]]
    assert [m["transactionId"] for m in listed] == [m.transaction_id for m in messages]
    total = sum(len(p) for p in pack)
    assert len(pack) == -(-total // POINTER_LIMIT)  # no fewer would hold them
    assert [json.loads(p)["part"] for p in pack] == list(range(1, len(pack) + 1))
    assert {json.loads(p)["parts"] for p in pack} == {len(pack)}


def test_open_inbox_picks_blob_when_storage_is_set(azurite, names):
    settings = load_settings({"INBOX_STORAGE": azurite.connection_string,
                              "INBOX_CONTAINER": names[0], "INBOX_TABLE": names[1],
                              "INBOX_QUEUE": names[2], "INBOX_TIMEOUT_SECONDS": "4"})
    inbox = open_inbox(settings)
    assert isinstance(inbox, BlobInbox) and inbox._timeout == 4
    assert inbox.store(delivery("tx-1"), RECEIPT).outcomes == (NEW,)
    assert inbox.list()[0].transaction_id == "tx-1"


def test_bad_connection_string_is_a_configuration_error():
    with pytest.raises(DipEdgeError) as caught:
        BlobInbox.connect("AccountName=x;nonsense", "c", "t", "q")
    assert caught.value.code == "config.invalid"
    with pytest.raises(DipEdgeError) as caught:
        BlobInbox.connect("https://example.queue.core.windows.net", "c", "t", "q")
    assert caught.value.code == "config.invalid"
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("backend", ["sqlite", "blob"])
def test_inbox_cli_lists_one_record_per_id_and_shows_every_copy(azurite, names, tmp_path,
                                                               backend):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "DIP_"))}
    env["DIP_EDGE_STATE_DIR"] = str(tmp_path / "state")
    if backend == "blob":
        env.update(INBOX_STORAGE=azurite.connection_string, INBOX_CONTAINER=names[0],
                   INBOX_TABLE=names[1], INBOX_QUEUE=names[2])
    settings = load_settings(env)
    inbox = open_inbox(settings)
    original = delivery("tx-1", "tx-2")
    inbox.store(original, RECEIPT)
    copies = [delivery("tx-1", filler="second")[0], delivery("tx-1", filler="third")[0]]
    inbox.store(copies, Receipt("2026-01-02T00:00:00.000Z", "later", None, None))
    inbox.close()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).with_name("dip-edge")), "inbox", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(m["transactionId"], m["conflicts"]) for m in json.loads(listed.stdout)] == [
        ("tx-1", 2), ("tx-2", 0)]
    assert "conflicts=2" in cli("list").stdout
    shown = cli("show", "tx-1")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["message"] == json.loads(original[0].raw)
    assert document["conflicts"] == 2 and document["receivedAt"] == RECEIPT.received_at
    assert sorted(c["message"]["payload"]["CustomBlock"]["filler"]
                  for c in document["copies"]) == ["second", "third"]
    assert {c["channel"] for c in document["copies"]} == {"later"}
    assert cli("show", "tx-nope").returncode == 1
