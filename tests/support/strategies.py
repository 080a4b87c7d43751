"""Hypothesis strategies for hostile input: PFX bytes, certificate and signature headers,
DIP envelopes. Valid seeds are made once per process and then mutated."""

from __future__ import annotations

import base64
import json
from functools import cache

from hypothesis import strategies as st

from shared.certs import devpki


@cache
def seeds() -> devpki.DevPki:
    return devpki.make_dev_pki()


@cache
def seed_pfx() -> bytes:
    return seeds().client.pfx(b"hostile-seed-password")


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes flipped, a slice cut out, or truncated."""

    @st.composite
    def build(draw):
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["flip", "cut", "truncate"]))
            if not out:
                break
            at = draw(st.integers(0, len(out) - 1))
            if kind == "flip":
                out[at] ^= draw(st.integers(1, 255))
            elif kind == "cut":
                del out[at: at + draw(st.integers(1, 64))]
            else:
                del out[at:]
        return bytes(out)

    return build()


def pfx_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), st.deferred(lambda: mutated(seed_pfx())))


def certificate_header() -> st.SearchStrategy[str]:
    """Values for X-ARR-ClientCert: text, base64 of junk, base64 of a mutated certificate."""
    der = st.deferred(lambda: mutated(seeds().client.cert_der()))
    return st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
        st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode()),
        der.map(lambda b: base64.b64encode(b).decode()),
    )


SIGNATURE_HEADERS = ("X-DIP-Signature-Date", "X-DIP-Content-Hash",
                     "X-DIP-Signature-Certificate", "X-DIP-Signature")


def signature_headers() -> st.SearchStrategy[dict[str, str]]:
    """Any subset of the four X-DIP-* headers with hostile values."""
    value = st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
        st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
        st.just("2026-11-28T10:00:00.000Z"),
    )
    return st.dictionaries(st.sampled_from(SIGNATURE_HEADERS), value, max_size=4)


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(
    _json_scalar,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=20,
)


@st.composite
def _message(draw) -> dict:
    common: dict = {}
    if draw(st.booleans()):
        common["S0"] = draw(st.one_of(
            st.fixed_dictionaries({"interfaceID": st.one_of(st.text(max_size=12), json_values)}),
            json_values))
    if draw(st.booleans()):
        common["D0"] = draw(st.one_of(
            st.fixed_dictionaries({"transactionID": st.one_of(st.text(max_size=40), json_values),
                                   "replayIndicator": st.one_of(st.booleans(), json_values)}),
            json_values))
    payload = draw(st.one_of(st.just({"CommonBlock": common, "CustomBlock": {}}), json_values))
    return draw(st.one_of(st.just({"payload": payload}), json_values))


def envelopes() -> st.SearchStrategy[bytes]:
    """DIP delivery bodies: near-valid arrays, arbitrary JSON, and non-JSON bytes."""
    return st.one_of(
        st.lists(_message(), max_size=5).map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    )
