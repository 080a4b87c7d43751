"""Parsing queue message bodies into events: both schemas, both encodings, precise errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from shared.events.schema import (
    CLOUD_EVENTS,
    EVENT_GRID,
    EventError,
    blob_ref,
    key_vault_object,
    parse_event,
    parse_message,
)
from tests.support.eventgrid import blob_created_event, key_vault_event

VAULT = "https://kv1.vault.azure.net"


def kv(schema="eventgrid", **kwargs):
    return key_vault_event("SecretNewVersionCreated", "globalsign-pfx", "abc123",
                           vault_url=VAULT, schema=schema, exp=1924992000, **kwargs)


@pytest.mark.parametrize("schema, expected", [("eventgrid", EVENT_GRID),
                                              ("cloudevents", CLOUD_EVENTS)])
def test_both_schemas_give_the_same_event(schema, expected):
    document = kv(schema, event_id="e-1")
    (event,) = parse_message(json.dumps(document).encode())
    assert event.schema == expected
    assert (event.id, event.type, event.subject) == (
        "e-1", "Microsoft.KeyVault.SecretNewVersionCreated", "globalsign-pfx")
    assert event.topic.endswith("/providers/Microsoft.KeyVault/vaults/kv1")
    assert event.time is not None and event.time.tzinfo is not None  # 7 digits read
    obj = key_vault_object(event)
    assert (obj.vault_host, obj.kind, obj.name, obj.version) == (
        "kv1.vault.azure.net", "Secret", "globalsign-pfx", "abc123")
    assert obj.expires == datetime(2031, 1, 1, tzinfo=UTC)


def test_raw_base64_single_and_array_bodies_are_equivalent():
    one, two = kv(event_id="1"), kv("cloudevents", event_id="2")
    raw = json.dumps([one, two]).encode()
    assert parse_message(raw) == parse_message(base64.b64encode(raw))
    assert parse_message(base64.b64encode(raw).decode()) == parse_message(raw)
    assert [e.id for e in parse_message(raw)] == ["1", "2"]
    assert parse_message(b"\xef\xbb\xbf  " + json.dumps(one).encode() + b"\n")[0].id == "1"


def test_microsofts_sample_quirks_are_tolerated():
    # The documented sample has "ObjectName " with a trailing space and a leading space in
    # the version; data.Id is canonical anyway.
    document = kv()
    document["data"] = {"Id": f"{VAULT}/certificates/my-cert/v2", "VaultName": "kv1",
                        "ObjectType": "Certificate", "ObjectName ": "my-cert",
                        "Version": " v2", "NBF": 1, "EXP": 2}
    obj = key_vault_object(parse_event(document))
    assert (obj.kind, obj.name, obj.version) == ("Certificate", "my-cert", "v2")


@pytest.mark.parametrize(("nbf", "exp"), [
    (1559081980, 1559082102),  # numbers, as Key Vault sends them
    ("1559081980", "1559082102"),  # strings, as Microsoft's sample prints them
    (" 1559081980 ", "1559082102.0"),
    (None, None), ("", ""),
])
def test_nbf_and_exp_are_numbers_or_numeric_strings(nbf, exp):
    document = kv()
    document["data"] = {"Id": f"{VAULT}/secrets/s/v1", "NBF": nbf, "EXP": exp}
    obj = key_vault_object(parse_event(document))
    if exp in (None, ""):
        assert (obj.not_before, obj.expires) == (None, None)
    else:
        assert obj.not_before.isoformat() == "2019-05-28T22:19:40+00:00"
        assert obj.expires.isoformat() == "2019-05-28T22:21:42+00:00"


@pytest.mark.parametrize("value", ["soon", "1e9", "0x10", "12 34", "NaN", True, [1], {"s": 1}])
def test_nbf_and_exp_that_are_not_epoch_seconds_are_malformed(value):
    for key in ("NBF", "EXP"):
        document = kv()
        document["data"] = {"Id": f"{VAULT}/secrets/s/v1", key: value}
        with pytest.raises(EventError, match=f"data.{key} must be epoch seconds"):
            key_vault_object(parse_event(document))


@pytest.mark.parametrize("field", ["id", "topic", "subject", "eventType", "eventTime", "data"])
def test_event_grid_required_fields(field):
    document = kv()
    del document[field]
    with pytest.raises(EventError) as raised:
        parse_event(document)
    assert raised.value.code == "event.malformed"
    assert f"'{field}'" in str(raised.value)


@pytest.mark.parametrize("field", ["id", "source", "type"])
def test_cloud_events_required_fields(field):
    document = kv("cloudevents")
    del document[field]
    with pytest.raises(EventError, match=f"'{field}'"):
        parse_event(document)


@pytest.mark.parametrize("body, fragment", [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"%%%", "neither JSON nor base64"),
    (base64.b64encode(b"\xff\xfe\x00"), "not valid JSON"),
    (b"[]", "empty array"),
    (b"42", "neither JSON nor base64"),
    (b'"text"', "neither JSON nor base64"),
    (b"[42]", "event [0] is a JSON int"),
    (b"{}", "neither 'eventType'"),
    (b'{"specversion": "0.3", "id": "1"}', "only CloudEvents 1.0"),
    (json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t",
                 "data_base64": "AA=="}).encode(), "data_base64"),
    (b'{"eventType": 7}', "'id'"),
    (json.dumps({**kv(), "eventType": 7}).encode(), "'eventType' must be a string"),
    (json.dumps({**kv(), "eventTime": "yesterday"}).encode(), "not an ISO 8601 time"),
    (json.dumps({**kv(), "eventTime": "2026-01-01T00:00:00"}).encode(), "no time zone"),
    (json.dumps({**kv(), "data": [1]}).encode(), "'data' must be an object"),
    (b"{" * 70000, "at most"),
    (b"[" * 60000, "nested too deeply"),
    (base64.b64encode(b"[" * 40000), "nested too deeply"),
    (b'{"id": "\\ud800", "eventType": "x"}', "not valid Unicode"),
])
def test_bad_bodies_get_precise_errors(body, fragment):
    with pytest.raises(EventError) as raised:
        parse_message(body)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("data, fragment", [
    ({"Id": "http://kv/secrets/x/1"}, "not a Key Vault object URL"),
    ({"Id": "https://kv.vault.azure.net/secrets"}, "not a Key Vault object URL"),
    ({"Id": "https://kv.vault.azure.net/secrets/x/1", "EXP": "soon"}, "epoch seconds"),
    ({"Id": "https://kv.vault.azure.net/secrets/x/1", "EXP": 10**20}, "out of range"),
    ({"Id": "https://kv.vault.azure.net/secrets/x/..%2F..%2Fetc"}, "not a Key Vault version"),
    ({"ObjectName": "x", "Version": "a b"}, "not a Key Vault version"),
    ({"ObjectName": "x", "Version": "\u00e9t\u00e9"}, "not a Key Vault version"),
])
def test_bad_key_vault_data(data, fragment):
    event = parse_event({**kv(), "data": data})
    with pytest.raises(EventError, match=fragment):
        key_vault_object(event)


def test_a_key_vault_event_without_data_id_uses_object_name_and_subject():
    event = parse_event({**kv(), "data": {"ObjectName": "n", "Version": "v"}})
    obj = key_vault_object(event)
    assert (obj.vault_host, obj.name, obj.version, obj.kind) == (None, "n", "v", "Secret")
    assert key_vault_object(parse_event({**kv(), "data": {}})).name == "globalsign-pfx"
    expiry = {**kv(), "eventType": "Microsoft.KeyVault.CertificateNearExpiry", "data": {}}
    assert key_vault_object(parse_event(expiry)).kind == "Certificate"


def test_blob_created_names_container_blob_and_etag():
    event = parse_event(blob_created_event("pfx-uploads", "team/a b.pfx", etag='"0x8DABC"',
                                           length=2710))
    ref = blob_ref(event)
    assert (ref.container, ref.name, ref.etag, ref.content_length) == (
        "pfx-uploads", "team/a b.pfx", "0x8DABC", 2710)


@pytest.mark.parametrize("subject", ["/blobServices/default/containers/c",
                                     "/blobServices/default/containers//blobs/x",
                                     "/elsewhere/containers/c/blobs/x"])
def test_blob_subjects_that_name_no_blob(subject):
    event = parse_event({**blob_created_event("c", "x", etag="1", length=1),
                         "subject": subject})
    with pytest.raises(EventError, match="does not name a blob"):
        blob_ref(event)
