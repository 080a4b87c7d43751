"""The Blob inbox on Azurite through the TCP proxy (``tests/support/proxy.py``), all in one run:

* cost against batch size: a 100-message delivery against a 1-message one, with 5 ms of
  simulated round trip (2.5 ms each way), for the chosen index layout (16 partitions,
  entity-group transactions written by the inbox) and the alternatives measured: one
  partition (one 100-entity transaction), the SDK's ``submit_transaction``, and the
  previous design's core, one blob per message (100 uploads in parallel against one);
* a 5,000-message delivery (~2.6 MiB) through the proxy without added delay;
* storage stalled (accepts, never answers) and refused: time to ``inbox.unavailable`` with
  the default budget (INBOX_TIMEOUT_SECONDS = 10);
* deliveries per second through ``dip-edge serve`` with 8 connections, the Blob inbox on
  Azurite against the SQLite inbox.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import Figure, median_seconds

AREA = "inbox"
_counter = iter(range(10**9))


def _delivery(count: int, size: int = 512):
    from shared.dip.envelope import parse_delivery

    return parse_delivery(json.dumps([{"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": "IF-033", "schemaVersion": "011"},
            "S1": {"senderDIPID": "1234567890", "senderRoleID": "SUP"},
            "D0": {"transactionID": f"bench-{os.getpid()}-{next(_counter)}",
                   "publicationID": "PUB-033", "transactionTimestamp": "2026-01-01T10:00:00.000Z",
                   "replayIndicator": False}},
        "CustomBlock": {"readings": "x" * max(0, size - 330)}}} for _ in range(count)]).encode())


def _sdk_transaction(box):
    """The alternative to the inbox's own entity-group transaction: the SDK's."""
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableTransactionError

    def transact(operations) -> None:
        try:
            box._table.submit_transaction([
                (kind, entity, {"mode": "replace"}) if kind == "upsert" else (kind, entity)
                for kind, entity in operations])
        except TableTransactionError as exc:
            if exc.error_code == "EntityAlreadyExists":
                raise ResourceExistsError(exc.message) from None
            raise

    return transact


def run() -> list[Figure]:
    from shared.dip.inbox import Receipt
    from shared.dip.inbox.blob import BlobInbox
    from shared.problems import DipEdgeError
    from tests.support.azurite import connection_string, start_azurite
    from tests.support.proxy import TcpProxy

    receipt = Receipt("2026-01-01T00:00:00.000Z", "bench", "AB" * 32, "CD" * 32)
    azurite = start_azurite()
    proxies = [TcpProxy(p) for p in (azurite.blob_port, azurite.queue_port, azurite.table_port)]
    proxied = connection_string(*(p.port for p in proxies))
    figures: list[Figure] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-inbox-"))
    try:
        def inbox(name: str, *, sdk: bool = False, **options) -> BlobInbox:
            box = BlobInbox.connect(proxied, name, name.replace("-", ""), name, **options)
            if sdk:
                box._transact = _sdk_transaction(box)
            box.store(_delivery(1), receipt)  # creates the container, table and queue
            return box

        def store_time(box: BlobInbox, count: int, runs: int) -> float:
            prepared = iter([_delivery(count) for _ in range(runs + 2)])  # parsed beforehand
            return median_seconds(lambda: box.store(next(prepared), receipt), runs=runs,
                                  warmup=2)

        # 1. Cost against batch size, 5 ms of round trip.
        for proxy in proxies:
            proxy.delay(up=0.0025, down=0.0025)
        for label, name, options in (
                ("16 partitions (chosen)", "size-16", {}),
                ("1 partition", "size-1", {"partitions": 1}),
                ("16 partitions, the SDK's submit_transaction", "size-sdk", {"sdk": True})):
            box = inbox(name, **options)
            one = store_time(box, 1, 21)
            hundred = store_time(box, 100, 21)
            figures += [
                Figure(AREA, f"Blob inbox, 1-message delivery, 5 ms RTT, {label}", one * 1e3,
                       "ms", None, None, 21, "blob + index + pointer + marker"),
                Figure(AREA, f"Blob inbox, 100-message delivery (~50 KB), 5 ms RTT, {label}",
                       hundred * 1e3, "ms", "1-message delivery, same inbox", one * 1e3, 21,
                       "target ≤ 3×"),
            ]
            box.close()
        # The alternative: a blob per message, uploaded in parallel.
        from azure.storage.blob import ContainerClient

        container = ContainerClient.from_connection_string(proxied, "size-16")
        pool = concurrent.futures.ThreadPoolExecutor(32)

        def uploads(count: int) -> None:
            names = [f"per-message/{os.getpid()}-{next(_counter)}" for _ in range(count)]
            list(pool.map(lambda n: container.upload_blob(n, b"x" * 512), names))

        single = median_seconds(lambda: uploads(1), runs=21, warmup=2)
        parallel = median_seconds(lambda: uploads(100), runs=11, warmup=1)
        figures.append(Figure(AREA, "alternative: 100 blob uploads in parallel, 5 ms RTT",
                              parallel * 1e3, "ms", "1 blob upload", single * 1e3, 11,
                              "the upload alone, before any pointer or marker"))
        pool.shutdown()
        container.close()

        # 2. 5,000 messages (~2.6 MiB) without added delay.
        for proxy in proxies:
            proxy.delay()
        box = inbox("large")
        big = _delivery(5000)
        size = sum(len(m.raw) for m in big)
        times = []
        for _ in range(3):
            messages = _delivery(5000)
            started = time.perf_counter()
            assert box.store(messages, receipt).accepted == 5000
            times.append(time.perf_counter() - started)
        redelivered = median_seconds(lambda: box.store(messages, receipt), runs=5, warmup=1)
        figures += [
            Figure(AREA, f"Blob inbox, 5,000-message delivery ({size / 2**20:.1f} MiB), "
                   "proxy without delay", statistics.median(times), "s", "budget", 10.0, 3,
                   "target: acknowledged within the 10 s budget"),
            Figure(AREA, "Blob inbox, the same 5,000-message delivery again (from the marker)",
                   redelivered * 1e3, "ms", None, None, 5, "2 requests"),
        ]
        box.close()

        # 3. Stalled and refused storage, the default budget.
        box = inbox("faults")
        for fault in ("stall", "refuse"):
            samples = []
            for _ in range(3):
                getattr(proxies[2], fault)()
                started = time.perf_counter()
                try:
                    box.store(_delivery(10), receipt)
                    raise AssertionError("stored while storage was down")
                except DipEdgeError as err:
                    assert err.code == "inbox.unavailable"
                samples.append(time.perf_counter() - started)
                proxies[2].heal()
            figures.append(Figure(
                AREA, f"storage {'stalled' if fault == 'stall' else 'refusing'}: time to 503",
                statistics.median(samples), "s", "INBOX_TIMEOUT_SECONDS + 1 s", 11.0, 3,
                "the table service behind the proxy"))
        box.close()

        # 4. Through dip-edge serve, 8 connections: Blob inbox (Azurite direct) vs SQLite.
        from bench.bench_webhook import serve_rates

        blob_env = {"INBOX_STORAGE": azurite.connection_string, "INBOX_CONTAINER": "serve",
                    "INBOX_TABLE": "serve", "INBOX_QUEUE": "serve"}
        sqlite = serve_rates(tmp / "sqlite", ((8, 60),), {}, label=" (SQLite inbox)")
        blob = serve_rates(tmp / "blob", ((8, 60),), blob_env, label=" (Blob inbox, Azurite)")
        figures += sqlite
        figures.append(Figure(AREA, blob[0].name, blob[0].median, "per s",
                              "SQLite inbox, same set-up", sqlite[0].median, 3,
                              "client, server and Azurite share the machine's 2 cores"))
    finally:
        for proxy in proxies:
            proxy.close()
        azurite.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
