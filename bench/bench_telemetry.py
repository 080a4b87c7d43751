"""Telemetry: what the Azure Monitor OpenTelemetry distro would add to a cold start, against
what dip-edge's own records cost.

The distro is what the Python worker loads with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY
(``configure_azure_monitor``); it is not a dependency of dip-edge, so it lives in its own
venv, ``.venv-otel`` (``make bench`` builds it from requirements-otel.txt). Each sample is a
fresh process in that venv that has imported ``function_app`` first, timing the distro's
import and then ``configure_azure_monitor``, against ``import function_app`` in the same
venv. The configured exporter points at 127.0.0.1:9, statsbeat is off and the resource
detectors are the environment's only (the Azure VM detector would call the metadata
service), so nothing leaves the machine. Per record, ``emit`` of a delivery record through
a JSON-formatting handler is timed against a plain ``logger.info`` line.
"""

from __future__ import annotations

import io
import logging
import statistics
import subprocess
import sys
from pathlib import Path

from bench import Figure, median_seconds

ROOT = Path(__file__).resolve().parents[1]
OTEL_PYTHON = ROOT / ".venv-otel" / "bin" / "python"
RUNS = 7
_SAFE = ("import os; os.environ.update(APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL='true', "
         "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS='otel', OTEL_TRACES_EXPORTER='none'); ")
_PROBE = _SAFE + (
    "import time; t0 = time.perf_counter(); import function_app; t1 = time.perf_counter(); "
    "from azure.monitor.opentelemetry import configure_azure_monitor; "
    "t2 = time.perf_counter(); configure_azure_monitor(connection_string="
    "'InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/', "
    "disable_offline_storage=True, enable_live_metrics=False); t3 = time.perf_counter(); "
    "print(t1 - t0, t2 - t1, t3 - t2)")
_OWN = ("import time; import azure.functions; t0 = time.perf_counter(); "
        "import shared.telemetry, shared.logconfig; print(time.perf_counter() - t0)")


def _samples(python: Path | str, code: str) -> list[list[float]]:
    runs = []
    for _ in range(RUNS):
        done = subprocess.run([str(python), "-c", code], cwd=ROOT, capture_output=True,
                              text=True, check=True, timeout=120)
        runs.append([float(x) for x in done.stdout.split()])
    return runs


def _record_cost() -> tuple[float, float]:
    from shared.logconfig import JsonFormatter
    from shared.telemetry import emit

    logger = logging.getLogger("bench.telemetry")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fields = {"status": 200, "code": None, "channel": None, "accepted": 1, "duplicates": 0,
              "conflicts": 0, "messages": 1, "transactionIds": ["5b0d7c1e-0000-4000-8000-1"],
              "interfaceIds": ["IF-033"], "clientThumbprint": "A" * 64,
              "signerThumbprint": "B" * 64, "retryAfter": None, "bytes": 5120,
              "durationMs": 3.2}
    structured = median_seconds(lambda: emit(logger, "delivery", fields), runs=2000)
    plain = median_seconds(lambda: logger.info("dip delivery: channel=%s status=%d %s", None,
                                               200, "accepted=1 duplicates=0"), runs=2000)
    return structured, plain


def run() -> list[Figure]:
    figures = []
    if OTEL_PYTHON.exists():
        samples = _samples(OTEL_PYTHON, _PROBE)
        app, imported, configured = (statistics.median(s[i] for s in samples) for i in range(3))
        note = "fresh process per sample in .venv-otel, after import function_app; median"
        figures += [
            Figure("telemetry", "Azure Monitor distro: import azure.monitor.opentelemetry",
                   imported * 1000, "ms", "import function_app", app * 1000, RUNS, note),
            Figure("telemetry", "Azure Monitor distro: configure_azure_monitor()",
                   configured * 1000, "ms", "import function_app", app * 1000, RUNS, note),
            Figure("telemetry", "Azure Monitor distro: import + configure",
                   (imported + configured) * 1000, "ms", "import function_app", app * 1000,
                   RUNS, note)]
    else:
        print("bench_telemetry: .venv-otel missing (make bench builds it); distro skipped",
              file=sys.stderr)
    own = statistics.median(s[0] for s in _samples(sys.executable, _OWN))
    figures.append(Figure("telemetry", "dip-edge: import shared.telemetry + shared.logconfig",
                          own * 1000, "ms", None, None, RUNS,
                          "after import azure.functions, fresh process per sample"))
    structured, plain = _record_cost()
    figures.append(Figure("telemetry", "emit() one delivery record, JSON-formatted",
                          structured * 1e6, "µs", "logger.info one plain line",
                          plain * 1e6, 2000, "in-process, one handler"))
    return figures
