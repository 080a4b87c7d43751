"""The delivery envelope: what is a DIP delivery, what each message's key is."""

from __future__ import annotations

import hashlib
import json

import pytest

from shared.dip.envelope import HASH_KEY_PREFIX, canonical_json, parse_delivery
from shared.problems import DipEdgeError


def payload(txid: str | None = "tx-1", interface: str = "IF-033", **d0) -> dict:
    common: dict = {"S0": {"interfaceID": interface, "schemaVersion": "011"}}
    if txid is not None:
        common["D0"] = {"transactionID": txid, "publicationID": "PUB-033",
                        "transactionTimestamp": "2025-06-27T14:29:09.061Z", **d0}
    return {"payload": {"CommonBlock": common, "CustomBlock": {"value": "é"}}}


def body(*elements) -> bytes:
    return json.dumps(list(elements)).encode()


def code_of(raw: bytes) -> tuple[str, str]:
    with pytest.raises(DipEdgeError) as caught:
        parse_delivery(raw)
    return caught.value.code, str(caught.value)


def test_messages_keep_order_and_fields():
    messages = parse_delivery(body(payload("a", replayIndicator=True), payload("b", "PUB-1")))
    assert [m.transaction_id for m in messages] == ["a", "b"]
    first = messages[0]
    assert (first.interface_id, first.publication_id, first.replay_indicator,
            first.message_date) == ("IF-033", "PUB-033", True, "2025-06-27")
    assert messages[1].interface_id == "PUB-1" and not messages[1].replay_indicator
    assert json.loads(first.raw) == payload("a", replayIndicator=True)


def test_raw_is_each_element_exactly_as_delivered():
    first = json.dumps(payload("a"), indent=4, ensure_ascii=False)
    second = '{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-1"}}}, "n": 1.50}'
    raw = f" \n[ {first} ,\n\t{second}\n] ".encode()
    messages = parse_delivery(raw)
    assert [m.raw for m in messages] == [first.encode(), second.encode()]


def test_raw_keeps_exact_utf8_bytes_after_non_ascii_text():
    # Non-ASCII before an element shifts byte offsets away from character offsets.
    first = '{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-1"}}}, "n": "Zürich ⚡"}'
    second = '{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-2"}}},"s":"\\u00e9 é"}'
    messages = parse_delivery(f"[{first},  {second}]".encode())
    assert [m.raw for m in messages] == [first.encode(), second.encode()]


def test_message_without_transaction_id_is_keyed_by_payload_hash():
    element = payload(None)
    message = parse_delivery(body(element))[0]
    expected = hashlib.sha256(canonical_json(element["payload"])).hexdigest()
    assert message.transaction_id == f"sha256-{expected}"
    assert message.transaction_id.startswith(HASH_KEY_PREFIX)
    # Same content, different key order and spacing: same key.
    reordered = json.dumps([{"payload": dict(reversed(list(element["payload"].items())))}],
                           indent=2).encode()
    assert parse_delivery(reordered)[0].transaction_id == message.transaction_id
    other = payload(None, interface="IF-034")
    assert parse_delivery(body(other))[0].transaction_id != message.transaction_id


@pytest.mark.parametrize("raw, fragment", [
    (b"", "not valid JSON"),
    (b"[{", "not valid JSON"),
    (b"\xff\xfe[]", "not UTF-8"),
    (b'["\xc3\x28"]', "not UTF-8"),
    (b"[NaN]", "NaN"),
    (b"[{}, ]", "Expecting value"),
    (b"[{} {}]", "delimiter"),
    (b"[{}] x", "Extra data"),
    (b"[{}", "delimiter"),
    (b"{", "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
])
def test_malformed_json(raw, fragment):
    code, detail = code_of(raw)
    assert code == "message.malformed_json" and fragment in detail


def test_nesting_just_under_the_parser_limit_is_still_handled():
    deep = b"[" * 900 + b"]" * 900
    element = b'{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-1"}},"CustomBlock":' + \
        deep + b"}}"
    assert parse_delivery(b"[" + element + b"]")[0].interface_id == "IF-1"


@pytest.mark.parametrize("document, fragment", [
    ({"payload": {}}, "JSON array of messages, not a JSON object"),
    ("text", "not a JSON string"),
    ([], "no messages"),
    (None, "not a JSON null"),
    ([1], "Message [0]: the element is a JSON number"),
    ([{}], "Message [0]: payload is missing"),
    ([{"payload": []}], "Message [0]: payload is a JSON array"),
    ([{"payload": {"CommonBlock": {}}}], "payload.CommonBlock.S0 is missing"),
    ([{"payload": {"CommonBlock": {"S0": {}}}}], "S0.interfaceID is missing"),
    ([{"payload": {"CommonBlock": {"S0": {"interfaceID": 33}}}}], "interfaceID is a JSON number"),
    ([{"payload": {"CommonBlock": {"S0": {"interfaceID": " "}}}}], "not a non-empty string"),
    ([{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF\n1"}}}}], "control characters"),
    ([{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-1"}, "D0": "x"}}}],
     "D0 is a JSON string"),
])
def test_invalid_envelope(document, fragment):
    code, detail = code_of(json.dumps(document).encode())
    assert code == "message.invalid_envelope" and fragment in detail


def test_invalid_envelope_names_the_element():
    bad = payload("x")
    bad["payload"]["CommonBlock"]["D0"]["transactionID"] = ["not", "a", "string"]
    code, detail = code_of(body(payload("a"), payload("b"), bad))
    assert code == "message.invalid_envelope"
    assert detail.startswith("Message [2]: payload.CommonBlock.D0.transactionID is a JSON array")


@pytest.mark.parametrize("field, value, fragment", [
    ("transactionID", "x" * 257, "longer than 256"),
    ("transactionID", "", "not a non-empty string"),
    ("replayIndicator", "yes", "replayIndicator is not a boolean"),
])
def test_invalid_d0_fields(field, value, fragment):
    element = payload("tx")
    element["payload"]["CommonBlock"]["D0"][field] = value
    code, detail = code_of(body(element))
    assert code == "message.invalid_envelope" and fragment in detail


def test_message_date_falls_back_to_sender_timestamp_then_none():
    element = payload(None)
    element["payload"]["CommonBlock"]["S1"] = {"senderTimestamp": "2025-01-02T03:04:05Z"}
    assert parse_delivery(body(element))[0].message_date == "2025-01-02"
    assert parse_delivery(body(payload(None)))[0].message_date is None


@pytest.mark.parametrize("field", ["S0.interfaceID", "D0.transactionID", "D0.publicationID"])
def test_identifier_with_an_unpaired_surrogate_is_invalid(field):
    # JSON lets "\ud800" through; no store can encode it (UTF-8, blob names), so it used
    # to reach the inbox and fail there with a 500.
    block, name = field.split(".")
    element = payload("tx")
    element["payload"]["CommonBlock"][block][name] = "IF-\ud800"
    code, detail = code_of(body(element))
    assert code == "message.invalid_envelope" and name in detail


@pytest.mark.parametrize("custom", [b"1e400", b'"\\udc00"'])
def test_unhashable_payload_without_transaction_id_is_invalid(custom):
    # Keyed by the hash of its canonical JSON, which has no form for inf or a lone
    # surrogate: a precise 400, not a ValueError/UnicodeEncodeError from json.dumps.
    raw = (b'[{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-1"}},"CustomBlock":' +
           custom + b"}}]")
    code, detail = code_of(raw)
    assert code == "message.invalid_envelope" and "Message [0]" in detail


def test_payload_oddities_are_kept_when_the_transaction_id_keys_the_message():
    raw = (b'[{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-1"},'
           b'"D0":{"transactionID":"tx"}},"CustomBlock":[1e400,"\\udc00"]}}]')
    assert parse_delivery(raw)[0].raw == raw[1:-1]
