"""The DIP webhook: handler cost against the bare floor, inbox latency, serve throughput.

* handler in-process (client certificate + signature + envelope + inbox, warm caches)
  for a 5 KB single-message delivery and a 100-message batch, against the floor of the
  same work done bare (load the certificate, SHA-256 the body, one RSA-2048 verify,
  json.loads), all medians of the same run. The target row ("excl. fsync") runs the real
  SQLite inbox code on a WAL file with synchronous=OFF, so only the fsync is left out;
  beside it the same handler with SQLite in memory, with no storage at all, and with
  the real inbox (WAL, synchronous=FULL, one fsync per delivery). The SQLite files are
  filled first (about 8 MB), so the WAL has grown to its working size and checkpoints
  cycle, as in an inbox that has been running: a brand-new file pays for growing the WAL
  on every write, which no running webhook does.
* inbox write latency: SQLite (fsync per delivery) and Blob storage (Azurite).
* deliveries per second through ``dip-edge serve`` (keep-alive mTLS), sequential and over
  8 concurrent connections, against GET /api/health on the same connections.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import Figure, median_seconds

AREA = "webhook"
URL = "https://dip-edge.example.net/api/webhooks/dip/bench"
RUNS = 51
_counter = iter(range(10**9))


def _message(size: int) -> dict:
    n = next(_counter)
    return {"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": "IF-033", "schemaVersion": "011"},
            "S1": {"senderDIPID": "1234567890", "senderRoleID": "SUP"},
            "D0": {"transactionID": f"bench-{os.getpid()}-{n}", "publicationID": "PUB-033",
                   "transactionTimestamp": "2026-01-01T10:00:00.000Z",
                   "replayIndicator": False}},
        "CustomBlock": {"readings": "x" * max(0, size - 330)}}}


def _delivery(count: int, size: int) -> bytes:
    return json.dumps([_message(size) for _ in range(count)]).encode()


def _steady(inbox, count: int, size: int):
    """``inbox`` after ~8 MB of deliveries like the measured ones (see the docstring)."""
    from shared.dip.envelope import parse_delivery
    from shared.dip.inbox import Receipt

    receipt = Receipt("2026-01-01T00:00:00.000Z", "bench", None, None)
    for _ in range(max(1, 8 * 1024 * 1024 // (count * size))):
        inbox.store(parse_delivery(_delivery(count, size)), receipt)
    return inbox


def _in_process(pki, tmp: Path) -> list[Figure]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from shared.certs.identity import rule_for
    from shared.dip.inbox.sqlite import SqliteInbox
    from shared.dip.signature import canonical_string, sign_request
    from shared.services import webhook
    from shared.settings import load_settings
    from shared.web import Request

    settings = load_settings({
        "DIP_EDGE_STATE_DIR": str(tmp / "state"),
        "DIP_CLIENT_TRUST_ANCHORS": pki.root.cert_pem().decode(),
        "DIP_CLIENT_INTERMEDIATES": pki.intermediate.cert_pem().decode(),
        "DIP_CLIENT_IDENTITIES": json.dumps([rule_for(pki.client.certificate)]),
        "DIP_SIGNER_IDENTITIES": json.dumps([rule_for(pki.signer.certificate)]),
    })
    client_header = base64.b64encode(pki.client.cert_der()).decode()

    def requests(count: int, size: int, n: int) -> list[Request]:
        out = []
        for _ in range(n):
            body = _delivery(count, size)
            headers = {"content-type": "application/json", "x-arr-clientcert": client_header,
                       **{k.lower(): v for k, v in sign_request(
                           "POST", URL, body, private_key=pki.signer.private_key,
                           certificate=pki.signer.certificate).items()}}
            out.append(Request("POST", URL, headers, body, {"channel": "bench"}))
        return out

    def handler_time(batch: list[Request]) -> float:
        pending = iter(batch)

        def one() -> None:
            result = webhook.receive(next(pending), settings)
            assert result.status == 200, result.body

        return median_seconds(one, runs=RUNS, warmup=3)

    # The floor signs with the client's key so that it can load the key from the same
    # header it decodes; both keys are RSA-2048, so the verify costs the same.
    assert pki.client.private_key.key_size == pki.signer.private_key.key_size == 2048

    def floor_time(request: Request) -> float:
        """The same work done bare: decode and load the certificate from the header,
        SHA-256 the body, one RSA-2048 PKCS#1 v1.5 verify (of a valid signature), json.loads."""
        canonical = canonical_string("POST", URL, request.headers["x-dip-signature-date"],
                                     request.headers["x-dip-content-hash"])
        signature = pki.client.private_key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())

        def bare() -> None:
            cert = x509.load_der_x509_certificate(base64.b64decode(client_header))
            hashlib.sha256(request.body).digest()
            cert.public_key().verify(signature, canonical, padding.PKCS1v15(), hashes.SHA256())
            json.loads(request.body)

        return median_seconds(bare, runs=RUNS * 4, warmup=5)

    def with_inbox(parts: webhook.Components, inbox) -> webhook.Components:
        return webhook.Components(settings, parts.client_policy, parts.verifier, inbox)


    figures = []
    logging_off()
    for label, count, size in (("5 KB, 1 message", 1, 5 * 1024),
                               ("100-message batch (~100 KB)", 100, 1024)):
        n = RUNS + 3
        parts = webhook.components(settings)  # the real inbox: WAL, synchronous=FULL
        _steady(parts.inbox, count, size)
        durable_t = handler_time(requests(count, size, n))
        # The same handler and code path, the inbox's fsync isolated: the same kind of
        # file in WAL mode with synchronous=OFF (writes reach the OS, no fsync) ...
        unsynced = _steady(SqliteInbox(tmp / f"unsynced-{count}.sqlite3", synchronous="OFF"),
                          count, size)
        webhook._current = with_inbox(parts, unsynced)
        no_fsync_t = handler_time(requests(count, size, n))
        # ... an in-memory SQLite (no file at all) ...
        webhook._current = with_inbox(parts, SqliteInbox(":memory:", synchronous="OFF"))
        memory_t = handler_time(requests(count, size, n))
        # ... and no storage at all: the checks and the envelope alone.
        webhook._current = with_inbox(parts, _NullInbox())
        checks_t = handler_time(requests(count, size, n))
        webhook._current = None
        unsynced.close()
        parts.inbox.close()
        floor = floor_time(requests(count, size, 1)[0])
        base = "bare floor (cert load + SHA-256 + RSA verify + json.loads)"
        figures += [
            Figure(AREA, f"handler excl. fsync, {label}, SQLite file WAL synchronous=OFF",
                   no_fsync_t * 1e3, "ms", base, floor * 1e3, RUNS, "target ≤ 2× floor"),
            Figure(AREA, f"handler, {label}, SQLite in memory", memory_t * 1e3, "ms", base,
                   floor * 1e3, RUNS, "no file I/O"),
            Figure(AREA, f"handler without storage, {label}", checks_t * 1e3, "ms", base,
                   floor * 1e3, RUNS, "certificate + signature + envelope"),
            Figure(AREA, f"handler, {label}, SQLite WAL synchronous=FULL", durable_t * 1e3,
                   "ms", base, floor * 1e3, RUNS, "the real inbox: one fsync per delivery"),
        ]
    return figures


class _NullInbox:
    """Stores nothing: isolates the handler's own cost from the storage engine's."""

    def store(self, messages, receipt):
        from shared.dip.inbox import NEW, StoreResult

        return StoreResult(tuple(m.transaction_id for m in messages), (NEW,) * len(messages))

    def close(self) -> None:
        pass


def logging_off() -> None:
    import logging

    logging.getLogger("dip_edge").setLevel(logging.WARNING)


def _inbox_latency(tmp: Path) -> list[Figure]:
    from shared.dip.envelope import parse_delivery
    from shared.dip.inbox import Receipt
    from shared.dip.inbox.blob import BlobInbox
    from shared.dip.inbox.sqlite import SqliteInbox
    from tests.support.azurite import start_azurite

    receipt = Receipt("2026-01-01T00:00:00.000Z", "bench", "AB" * 32, "CD" * 32)

    def latency(inbox) -> float:
        def one() -> None:
            inbox.store(parse_delivery(_delivery(1, 5 * 1024)), receipt)

        return median_seconds(one, runs=RUNS, warmup=3)

    sqlite_t = latency(_steady(SqliteInbox(tmp / "latency.sqlite3"), 1, 5 * 1024))
    memory_t = latency(SqliteInbox(":memory:", synchronous="OFF"))
    figures = [Figure(AREA, "inbox write, SQLite (WAL, synchronous=FULL), 1 message",
                      sqlite_t * 1e3, "ms", "SQLite in memory", memory_t * 1e3, RUNS)]
    azurite = start_azurite()
    try:
        blob = BlobInbox.connect(azurite.connection_string, "bench", "bench", "bench")
        blob_t = latency(blob)
        figures.append(Figure(AREA, "inbox write, Blob inbox (Azurite), 1 message",
                              blob_t * 1e3, "ms", "SQLite WAL FULL", sqlite_t * 1e3, RUNS,
                              "blob + index entity + queue pointer + marker"))
    finally:
        azurite.stop()
    return figures


def _through_serve(tmp: Path) -> list[Figure]:
    return serve_rates(tmp / "serve", ((1, 300), (8, 60)), {})


def serve_rates(state: Path, shapes, env: dict[str, str], *, label: str = "") -> list[Figure]:
    """Deliveries per second through ``dip-edge serve`` (``env`` added to its environment,
    e.g. the Blob inbox's settings) for each (connections, deliveries per connection),
    against GET /api/health on the same connections."""
    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from shared.dip.signature import sign_request

    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dip-edge")), "serve", "--port", "0",
         "--state-dir", str(state), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("DIP_", "INBOX_"))},
             **env})
    try:
        while "listening on" not in (line := process.stdout.readline()):
            if not line:
                raise RuntimeError("dip-edge serve did not start")
        base = line.split("listening on ", 1)[1].split()[0]
        certs = state / "dev-certs"
        signer = x509.load_pem_x509_certificate((certs / "signer.pem").read_bytes())
        signer_key = load_pem_private_key((certs / "signer.key").read_bytes(), None)
        url = base + "/api/webhooks/dip/bench"

        def prepared(n: int) -> list[tuple[bytes, dict]]:
            out = []
            for _ in range(n):
                body = _delivery(1, 5 * 1024)
                out.append((body, {"Content-Type": "application/json", **sign_request(
                    "POST", url, body, private_key=signer_key, certificate=signer)}))
            return out

        def client() -> httpx.Client:
            context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
            return httpx.Client(verify=context, timeout=30)

        def rate(connections: int, per_connection: int, health: bool) -> float:
            work = [prepared(per_connection) if not health else [None] * per_connection
                    for _ in range(connections)]
            clients = [client() for _ in range(connections)]
            for c in clients:  # handshake outside the timing: keep-alive throughput
                c.get(base + "/api/health")
            barrier = threading.Barrier(connections + 1)

            def drive(c: httpx.Client, items) -> None:
                barrier.wait()
                for item in items:
                    if health:
                        response = c.get(base + "/api/health")
                    else:
                        response = c.post(url, content=item[0], headers=item[1])
                    assert response.status_code == 200, response.text

            threads = [threading.Thread(target=drive, args=(c, w))
                       for c, w in zip(clients, work, strict=True)]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            for c in clients:
                c.close()
            return connections * per_connection / elapsed

        figures = []
        for connections, per in shapes:
            samples = [rate(connections, per, False) for _ in range(3)]
            health = [rate(connections, per, True) for _ in range(3)]
            figures.append(Figure(
                AREA, f"deliveries through serve{label}, 5 KB, keep-alive mTLS, {connections} "
                      f"connection{'s' if connections > 1 else ''}",
                statistics.median(samples), "per s", "GET /api/health, same set-up",
                statistics.median(health), 3,
                "client and server share the machine's 2 cores"))
        return figures
    finally:
        process.terminate()
        process.wait(15)


def run() -> list[Figure]:
    from shared.certs.devpki import make_dev_pki

    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    try:
        pki = make_dev_pki()
        return _in_process(pki, tmp) + _inbox_latency(tmp) + _through_serve(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
