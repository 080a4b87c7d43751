"""Online validation of a submission against the fake Atlas, and where its time goes.

Measured, each a median: the whole online validation (``check_submission``: the offline
PFX checker, then the proof — mTLS login, validation policy, quota, trust chain — on one
connection), and its parts: the offline checker alone, building the client TLS context
and completing a TCP connect plus mutual-TLS handshake with the fake, and the proof alone.
The parts' ratios are their share of the whole. The fake runs in this process on threads,
so the numbers include its side of each handshake too (as a nearby server would).
"""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from bench import Figure
from shared.atlas.proof import AtlasConnection, prove_credentials
from shared.atlas.tls import client_context
from shared.certs.pfx_check import PfxPolicy, check_pfx
from shared.services.credentials import check_submission
from shared.services.submission import Submission
from shared.settings import load_settings
from shared.validation import passed_account
from tests.support.fake_atlas import FakeAtlas

RUNS = 25
API_KEY, API_SECRET = "a1b2c3d4e5f60718", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
PASSWORD = b"bench-pfx-password"


def run() -> list[Figure]:
    with FakeAtlas() as atlas:
        issued = atlas.new_client_certificate("bench-atlas-access")
        atlas.add_account(API_KEY, API_SECRET, issued)
        pfx = pkcs12.serialize_key_and_certificates(
            b"bench", issued.private_key, issued.certificate, issued.chain()[:1],
            BestAvailableEncryption(PASSWORD))
        settings = load_settings({**atlas.env(), "ATLAS_MAX_RETRIES": "0"})
        policy = PfxPolicy.from_settings(settings)
        connection = AtlasConnection.from_settings(settings)
        submission = Submission(API_KEY, API_SECRET, pfx, PASSWORD)
        report = check_pfx(pfx, PASSWORD, policy)
        host, port = urlsplit(atlas.base_url).hostname, urlsplit(atlas.base_url).port

        def online() -> None:
            assert check_submission(submission, settings).valid

        def checker() -> None:
            assert check_pfx(pfx, PASSWORD, policy).valid

        def handshake() -> None:
            context = client_context(report.leaf, report.private_key,
                                     report.chain_certificates, connection.ca_bundle)
            with socket.create_connection((host, port)) as raw, \
                    context.wrap_socket(raw, server_hostname=host) as tls:
                tls.do_handshake()

        account = passed_account(report, API_KEY, API_SECRET)

        def proof() -> None:
            assert prove_credentials(account, connection).proven

        parts = {"online validation (checker + Atlas proof)": online,
                 "offline PFX checker (check_pfx)": checker,
                 "mTLS context + TCP connect + TLS handshake": handshake,
                 "Atlas proof (login + 3 GETs, one connection)": proof}
        medians = _interleaved_medians(parts, runs=RUNS, warmup=3)
        names = list(parts)
        total = medians[names[0]]
        figures = [Figure("atlas", names[0], total, "ms", runs=RUNS,
                          note=f"{ssl.OPENSSL_VERSION}, RSA-2048 client key")]
        for name in names[1:]:
            figures.append(Figure("atlas", name, medians[name], "ms",
                                  baseline_name="online validation", baseline_median=total,
                                  runs=RUNS, note="ratio = share of the online validation"))
        return figures


def _interleaved_medians(fns: dict[str, Callable[[], None]], *, runs: int,
                         warmup: int) -> dict[str, float]:
    """Median milliseconds of each function, timed in turn within each round, so that load
    from other processes on a shared machine falls on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for round_number in range(warmup + runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_number >= warmup:
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}
