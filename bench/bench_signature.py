"""The webhook's trust checks on a 5 KB delivery, against the bare floor of the same work.

Measured: ``TrustPolicy.check_header`` (warm validation cache) plus
``SignatureVerifier.verify`` — what the webhook does per request before the envelope.
Floor: load the signer's certificate from PEM, SHA-256 the body, one RSA-2048 verify.
Also the cold path (a chain build per request, as without the cache), for scale.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench import Figure, median_seconds
from shared.certs.trust import TrustPolicy
from shared.dip.signature import SignatureVerifier, canonical_string
from shared.settings import load_settings
from tests.support.dip_pki import DipPki

RUNS = 2000
URL = "https://webhook.participant.example/api/webhooks/dip"


def _body(size: int = 5 * 1024) -> bytes:
    filler = "x" * (size - 200)
    doc = [{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-033"},
                                        "D0": {"transactionID": "T-1"}},
                        "CustomBlock": {"filler": filler}}}]
    return json.dumps(doc).encode()[:size]


def run() -> list[Figure]:
    pki = DipPki.create()
    settings = load_settings(pki.env())
    client_policy = TrustPolicy.for_client(settings)
    verifier = SignatureVerifier.from_settings(settings)
    body = _body()
    header = pki.client_header()
    signed = {k.lower(): v for k, v in pki.sign("POST", URL, body).items()}

    def ours() -> None:
        assert client_policy.check_header(header).accepted
        verifier.verify("POST", URL, signed, body)

    pem = base64.b64decode(signed["x-dip-signature-certificate"])
    signature = base64.b64decode(signed["x-dip-signature"])
    date, claimed = signed["x-dip-signature-date"], signed["x-dip-content-hash"]

    def floor() -> None:
        key = x509.load_pem_x509_certificate(pem).public_key()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert digest == claimed
        key.verify(signature, canonical_string("POST", URL, date, digest), padding.PKCS1v15(),
                   hashes.SHA256())

    warm = median_seconds(ours, runs=RUNS, warmup=50)
    bare = median_seconds(floor, runs=RUNS, warmup=50)
    figures = [Figure("trust", "client cert (warm cache) + DIP signature, 5 KB body",
                      warm * 1e6, "µs", "bare: load cert, SHA-256, RSA-2048 verify",
                      bare * 1e6, RUNS)]

    uncached = TrustPolicy.for_client(settings)

    def cold() -> None:
        # Fresh caches (by DER and by header text): every check builds a chain.
        uncached._cache = type(uncached._cache)(1)
        uncached._by_text = type(uncached._by_text)(1)
        assert uncached.check_header(header).accepted

    figures.append(Figure("trust", "client cert, cold (chain built per call)",
                          median_seconds(cold, runs=200, warmup=5) * 1e6, "µs",
                          "bare: load cert, SHA-256, RSA-2048 verify", bare * 1e6, 200))
    return figures
