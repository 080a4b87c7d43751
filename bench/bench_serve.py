"""``dip-edge serve`` as a front door: deliveries per second and latency, and under attack.

* 5 KB signed deliveries (SQLite inbox, fsync per delivery) over 1, 8 and 64 keep-alive
  mTLS connections, against GET /api/health over the same set-up in the same run:
  throughput (median of 3 rounds) and p50 / p99 / max latency per request (median of the
  rounds' values). Handshakes are outside the timing, except in the burst figure.
* 64 connections opened at once: the slowest TCP connect (a dropped SYN costs 1 s).
* With the server's open-file limit at 1,024 and 1,000 slow connections held (TLS done,
  a request head begun and never finished), deliveries over 1 and 8 connections, against
  the same server before the slow connections were opened.

Client and server share the machine's cores; the client is Python threads with httpx.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import Figure
from bench.bench_webhook import _delivery

AREA = "serve"
ROUNDS = 3


class _Serve:
    def __init__(self, state: Path, *, file_limit: int | None = None) -> None:
        def limit() -> None:
            if file_limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dip-edge")), "serve", "--port", "0",
             "--state-dir", str(state), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=limit,  # noqa: PLW1509
            env={k: v for k, v in os.environ.items() if not k.startswith(("DIP_", "INBOX_",
                                                                          "SERVE_"))})
        while "listening on" not in (line := self.process.stdout.readline()):
            if not line:
                raise RuntimeError("dip-edge serve did not start")
        self.base = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.base.rsplit(":", 1)[1])
        self.certs = state / "dev-certs"

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        context.load_cert_chain(str(self.certs / "client.pem"), str(self.certs / "client.key"))
        return context

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def _prepared(serve: _Serve, n: int) -> list[tuple[bytes, dict]]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from shared.dip.signature import sign_request

    signer = x509.load_pem_x509_certificate((serve.certs / "signer.pem").read_bytes())
    key = load_pem_private_key((serve.certs / "signer.key").read_bytes(), None)
    url = serve.base + "/api/webhooks/dip/bench"
    out = []
    for _ in range(n):
        body = _delivery(1, 5 * 1024)
        out.append((body, {"Content-Type": "application/json", **sign_request(
            "POST", url, body, private_key=key, certificate=signer)}))
    return out


def _round(serve: _Serve, connections: int, per_connection: int,
           health: bool) -> tuple[float, list[float]]:
    """(requests per second, every request's latency in seconds)."""
    import httpx

    url = serve.base + ("/api/health" if health else "/api/webhooks/dip/bench")
    work = [[None] * per_connection if health else _prepared(serve, per_connection)
            for _ in range(connections)]
    clients = [httpx.Client(verify=serve.context(), timeout=60) for _ in range(connections)]
    for client in clients:  # the handshake outside the timing: keep-alive throughput
        client.get(serve.base + "/api/health")
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(connections + 1)

    def drive(client, items) -> None:
        mine = []
        barrier.wait()
        for item in items:
            started = time.perf_counter()
            response = (client.get(url) if health
                        else client.post(url, content=item[0], headers=item[1]))
            mine.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=drive, args=(c, w)) for c, w in zip(clients, work,
                                                                             strict=True)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return connections * per_connection / elapsed, latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(serve: _Serve, connections: int, per_connection: int,
             health: bool) -> dict[str, float]:
    rounds = [_round(serve, connections, per_connection, health) for _ in range(ROUNDS)]
    return {"rate": statistics.median(r for r, _ in rounds),
            "p50": statistics.median(_percentile(lat, 0.50) for _, lat in rounds) * 1e3,
            "p99": statistics.median(_percentile(lat, 0.99) for _, lat in rounds) * 1e3,
            "max": statistics.median(max(lat) for _, lat in rounds) * 1e3}


def _figures(label: str, measured: dict, baseline_name: str, baseline: dict,
             note: str = "") -> list[Figure]:
    return [
        Figure(AREA, f"{label}: deliveries", measured["rate"], "per s", baseline_name,
               baseline["rate"], ROUNDS, note),
        Figure(AREA, f"{label}: p50 latency", measured["p50"], "ms", baseline_name,
               baseline["p50"], ROUNDS),
        Figure(AREA, f"{label}: p99 latency", measured["p99"], "ms", baseline_name,
               baseline["p99"], ROUNDS, f"max {measured['max']:.0f} ms (baseline "
                                        f"{baseline['max']:.0f} ms)"),
    ]


def _burst(serve: _Serve, connections: int = 64) -> tuple[float, float]:
    """(median, slowest) TCP connect time of ``connections`` opened at once, in ms."""
    barrier = threading.Barrier(connections)
    context = serve.context()

    def one(_: int) -> float:
        barrier.wait()
        started = time.perf_counter()
        plain = socket.create_connection(("127.0.0.1", serve.port), timeout=30)
        connected = time.perf_counter() - started
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            tls.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while tls.recv(65536):
                pass
        return connected * 1e3

    samples = []
    for _ in range(ROUNDS):
        with ThreadPoolExecutor(connections) as pool:
            samples.append(list(pool.map(one, range(connections))))
    return (statistics.median(statistics.median(s) for s in samples),
            statistics.median(max(s) for s in samples))


def _hold_slow(serve: _Serve, count: int) -> list[ssl.SSLSocket]:
    context = serve.context()

    def slow(_: int) -> ssl.SSLSocket:
        tls = context.wrap_socket(socket.create_connection(("127.0.0.1", serve.port),
                                                           timeout=30),
                                  server_hostname="localhost")
        tls.sendall(b"POST /api/webhooks/dip HTTP/1.1\r\nHost: localhost\r\n")
        return tls

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(slow, range(count)))


def _still_open(held: list[ssl.SSLSocket]) -> int:
    count = 0
    for tls in held:
        tls.setblocking(False)
        try:
            count += tls.recv(1) != b""
        except ssl.SSLWantReadError:
            count += 1
        except (ssl.SSLError, OSError):
            pass
    return count


def run() -> list[Figure]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:  # the client holds 1,000 connections itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    figures: list[Figure] = []
    try:
        serve = _Serve(tmp / "serve")
        try:
            for connections, per in ((1, 200), (8, 40), (64, 8)):
                health = _measure(serve, connections, per, True)
                deliveries = _measure(serve, connections, per, False)
                plural = "s" if connections > 1 else ""
                figures += _figures(f"5 KB delivery, {connections} keep-alive connection"
                                    f"{plural}", deliveries, "GET /api/health, same set-up",
                                    health, "SQLite inbox, fsync per delivery")
            median, slowest = _burst(serve)
            figures.append(Figure(AREA, "64 connections opened at once: slowest TCP connect",
                                  slowest, "ms", "median connect of the same bursts", median,
                                  ROUNDS, "a dropped SYN would cost 1,000 ms"))
        finally:
            serve.stop()

        attacked = _Serve(tmp / "attacked", file_limit=1024)
        held: list[ssl.SSLSocket] = []
        try:
            before = {n: _measure(attacked, n, per, False) for n, per in ((1, 200), (8, 40))}
            held = _hold_slow(attacked, 1000)
            for connections, per in ((1, 200), (8, 40)):
                during = _measure(attacked, connections, per, False)
                plural = "s" if connections > 1 else ""
                figures += _figures(
                    f"5 KB delivery, {connections} connection{plural}, 1,000 slow "
                    f"connections held, server file limit 1,024", during,
                    "same server before the slow connections", before[connections],
                    f"{_still_open(held)} of the 1,000 still open after the runs")
        finally:
            for tls in held:
                tls.close()
            attacked.stop()
        return figures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
