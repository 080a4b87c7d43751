"""The Blob inbox against Azurite with the real Storage SDKs."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.dip.envelope import parse_delivery
from shared.dip.inbox import Receipt, open_inbox
from shared.dip.inbox.blob import QUEUE_MESSAGE_LIMIT, BlobInbox, _metadata, blob_name
from shared.problems import DipEdgeError
from shared.settings import load_settings
from tests.support.azurite import KEY

pytestmark = pytest.mark.azurite

RECEIPT = Receipt("2026-01-01T00:00:00.000Z", "pub 033/é", "AB" * 32, "CD" * 32)


def delivery(*txids: str, filler: str = ""):
    return parse_delivery(json.dumps([
        {"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"},
                                     "D0": {"transactionID": t, "replayIndicator": True,
                                            "transactionTimestamp": "2025-06-27T10:00:00Z"}},
                     "CustomBlock": {"filler": filler}}}
        for t in txids]).encode())


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:12]
    return f"inbox-{suffix}", f"inbox-{suffix}"


def connect(azurite, names, **options) -> BlobInbox:
    return BlobInbox.connect(azurite.connection_string, *names, **options)


def pointers(azurite, queue: str) -> list[dict]:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    client = QueueClient.from_connection_string(
        azurite.connection_string, queue, message_decode_policy=TextBase64DecodePolicy())
    return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]


def raw_queue_sizes(azurite, queue: str) -> list[int]:
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(azurite.connection_string, queue)
    return [len(m.content) for m in client.peek_messages(max_messages=32)]


def test_store_writes_blob_with_metadata_and_a_queue_pointer(azurite, names):
    inbox = connect(azurite, names)
    messages = delivery("tx-1", "tx/2 é")
    assert inbox.store(messages, RECEIPT) == [True, True]

    stored = {m.transaction_id: m for m in inbox.list()}
    assert set(stored) == {"tx-1", "tx/2 é"}
    one = stored["tx/2 é"]
    assert one.location == "2025-06-27/IF-033/tx%2F2%20%C3%A9.json"
    assert (one.channel, one.replay_indicator, one.client_thumbprint, one.signer_thumbprint,
            one.received_at) == ("pub 033/é", True, "AB" * 32, "CD" * 32, RECEIPT.received_at)
    fetched = inbox.get("tx/2 é")
    assert fetched.body == messages[1].raw and fetched.interface_id == "IF-033"
    assert inbox.get("nope") is None

    queued = pointers(azurite, names[1])
    assert [p["blob"] for p in queued] == [blob_name(m) for m in messages]
    assert queued[0] == {"container": names[0], "blob": blob_name(messages[0]),
                         "transactionId": "tx-1", "interfaceId": "IF-033",
                         "channel": "pub 033/é", "receivedAt": RECEIPT.received_at}


def message(interface: str, txid: str):
    (one,) = parse_delivery(json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": interface},
        "D0": {"transactionID": txid, "transactionTimestamp": "2025-06-27T10:00:00Z"}}}}]).encode())
    return one


def test_dot_segment_ids_get_their_own_blobs(azurite, names):
    # "." and ".." as a path segment were removed by the HTTP client after signing: a
    # 403 from storage, so inbox.unavailable for ever (or another interface's blob).
    inbox = connect(azurite, names)
    messages = [message(".", "tx-1"), message("..", "tx-2"), message("IF-1", "..")]
    assert inbox.store(messages, RECEIPT) == [True, True, True]
    assert inbox.store(messages, RECEIPT) == [False, False, False]
    assert {m.location for m in inbox.list()} == {blob_name(m) for m in messages}
    assert (inbox.get("tx-2").interface_id, inbox.get("..").body) == ("..", messages[2].raw)


@pytest.mark.parametrize("interface, txid", [("IF-1", "é" * 256), ("😀" * 256, "😀" * 256)])
def test_blob_names_stay_within_azures_1024_characters(interface, txid):
    # Percent-encoding multiplies non-ASCII IDs up to 12-fold; Azure answers a longer
    # name with 400, which the inbox reported as unavailable for ever (Azurite accepts it).
    name = blob_name(message(interface, txid))
    assert len(name) <= 1024
    assert name != blob_name(message(interface, txid[:-1]))
    assert name == blob_name(message(interface, txid))


def test_metadata_stays_within_azures_8_kib_for_the_longest_ids():
    # Azure refuses more than 8 KiB of metadata (Azurite does not); four 256-character
    # non-ASCII IDs, percent-encoded, would be ~9 KiB and inbox.unavailable for ever.
    longest = "😀" * 256
    one = parse_delivery(json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": longest},
        "D0": {"transactionID": longest, "publicationID": longest}}}}]).encode())[0]
    metadata = _metadata(one, Receipt("2026-01-01T00:00:00.000Z", "c" * 256, "A" * 40, "B" * 40))
    assert sum(len(k) + len(v) for k, v in metadata.items()) < 8 * 1024
    short = delivery("tx-é")[0]
    assert _metadata(short, RECEIPT)["transactionId"] == "tx-%C3%A9"  # readable as before


def test_redelivery_is_a_no_op(azurite, names):
    inbox = connect(azurite, names)
    inbox.store(delivery("tx-1"), RECEIPT)
    later = Receipt("2026-01-02T00:00:00.000Z", "other", None, None)
    assert inbox.store(delivery("tx-1", "tx-3"), later) == [False, True]
    first = inbox.get("tx-1")
    assert first.received_at == RECEIPT.received_at and first.channel == "pub 033/é"
    assert len(pointers(azurite, names[1])) == 2  # no second pointer for tx-1


def test_crash_between_blob_and_queue_is_repaired_by_the_redelivery(azurite, names):
    inbox = connect(azurite, names)
    inbox.store(delivery("tx-0"), RECEIPT)  # creates the container and queue
    (message,) = delivery("tx-1")
    # What a crash right after the blob write leaves: the blob, no pointer, no marker.
    inbox._container.upload_blob(blob_name(message), message.raw,
                                 metadata={"transactionId": "tx-1", "interfaceId": "IF-033",
                                           "receivedAt": RECEIPT.received_at})
    assert [p["transactionId"] for p in pointers(azurite, names[1])] == ["tx-0"]
    assert inbox.store([message], RECEIPT) == [False]
    assert [p["transactionId"] for p in pointers(azurite, names[1])] == ["tx-0", "tx-1"]
    assert inbox.store([message], RECEIPT) == [False]
    assert len(pointers(azurite, names[1])) == 2


def test_queue_pointer_stays_small_for_a_large_message(azurite, names):
    inbox = connect(azurite, names)
    (message,) = delivery("big", filler="x" * 300_000)
    assert len(message.raw) > QUEUE_MESSAGE_LIMIT
    assert inbox.store([message], RECEIPT) == [True]
    assert inbox.get("big").body == message.raw
    (size,) = raw_queue_sizes(azurite, names[1])
    assert size < 1024


def test_storage_failing_between_two_messages(azurite, names):
    """Azurite stops answering after the first message is fully stored."""
    state = {"metadata_writes": 0}

    def suspend_after_first_message(response):
        if "comp=metadata" in response.http_request.url and \
                response.http_request.method == "PUT":
            state["metadata_writes"] += 1
            if state["metadata_writes"] == 1:
                azurite.suspend()

    inbox = connect(azurite, names, timeout=1.0, retries=0,
                    raw_response_hook=suspend_after_first_message)
    messages = delivery("tx-1", "tx-2")
    try:
        with pytest.raises(DipEdgeError) as caught:
            inbox.store(messages, RECEIPT)
    finally:
        azurite.resume()
    assert caught.value.code == "inbox.unavailable" and caught.value.retry_after
    assert KEY not in str(caught.value) and "AccountKey" not in str(caught.value)
    # tx-1 is stored and announced; tx-2's upload timed out on our side, but Azurite may
    # still apply it when it wakes up (as real storage may): then it lacks its pointer.
    assert inbox.list()[0].transaction_id == "tx-1"
    assert [p["transactionId"] for p in pointers(azurite, names[1])] == ["tx-1"]
    # The DIP retries the whole delivery: the rest is stored, nothing twice.
    assert inbox.store(messages, RECEIPT)[0] is False
    assert [m.transaction_id for m in inbox.list()] == ["tx-1", "tx-2"]
    assert [p["transactionId"] for p in pointers(azurite, names[1])] == ["tx-1", "tx-2"]
    assert inbox.store(messages, RECEIPT) == [False, False]
    assert len(pointers(azurite, names[1])) == 2


def test_storage_down_is_unavailable(azurite, names):
    inbox = connect(azurite, names, timeout=0.5, retries=0)
    azurite.suspend()
    try:
        with pytest.raises(DipEdgeError) as caught:
            inbox.store(delivery("tx-1"), RECEIPT)
    finally:
        azurite.resume()
    assert caught.value.code == "inbox.unavailable"
    assert inbox.store(delivery("tx-1"), RECEIPT) == [True]


def test_open_inbox_picks_blob_when_storage_is_set(azurite, names):
    settings = load_settings({"INBOX_STORAGE": azurite.connection_string,
                              "INBOX_CONTAINER": names[0], "INBOX_QUEUE": names[1]})
    inbox = open_inbox(settings)
    assert isinstance(inbox, BlobInbox)
    assert inbox.store(delivery("tx-1"), RECEIPT) == [True]
    assert inbox.list()[0].transaction_id == "tx-1"


def test_bad_connection_string_is_a_configuration_error():
    with pytest.raises(DipEdgeError) as caught:
        BlobInbox.connect("AccountName=x;nonsense", "c", "q")
    assert caught.value.code == "config.invalid"
    with pytest.raises(DipEdgeError) as caught:
        BlobInbox.connect("https://example.queue.core.windows.net", "c", "q")
    assert caught.value.code == "config.invalid"
