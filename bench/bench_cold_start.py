"""Cold start: ``import function_app`` against ``import azure.functions`` alone, what
each function's first call adds by importing its service module, and Microsoft's Python
worker (``azure-functions-runtime``) indexing ``function_app.py`` and answering its first
health invocation, as the Functions host starts it.

Each sample is a fresh ``python -c`` process timing its own import (interpreter start-up
excluded), so the ratio shows what dip-edge adds on top of the Functions library. The
first-call figures time ``import shared.services.<x>`` in a process that has already
imported ``function_app`` (the function's own lazy import), against that base import.
The worker figure times, in a fresh process, importing the worker and the protocol
messages, WorkerInitRequest (indexing), FunctionsMetadataRequest, a FunctionLoadRequest per
function and the first ``GET /api/health`` InvocationRequest, up to its 200 RpcHttp.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import Figure

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
_PROBE = ("import time; {before}; t = time.perf_counter(); import {module}; "
          "print(time.perf_counter() - t)")
_WORKER_PROBE = (
    "import time; t = time.perf_counter(); from pathlib import Path; "
    "from shared.devhost.language_worker import LanguageWorker; "
    "reply = LanguageWorker(Path('.')).invoke_http('health', 'GET', "
    "'https://localhost/api/health', {}, {}, {}, b''); "
    "elapsed = time.perf_counter() - t; assert reply.status == 200, reply.status; "
    "print(elapsed)")
# function name -> the service module its first call imports
SERVICES = {"health": "health", "credentials / credentials_validate": "credentials",
            "dip_webhook": "webhook", "events": "events", "monitor": "monitor"}


def _seconds(code: str) -> float:
    """Median of what ``code`` prints, each run in a fresh interpreter."""
    samples = []
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "DIP_EDGE_STATE_DIR": state}
        for _ in range(RUNS):
            done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=True)
            samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def _import_seconds(module: str, before: str = "pass") -> float:
    return _seconds(_PROBE.format(module=module, before=before))


def run() -> list[Figure]:
    # Interleave nothing: both medians come from the same run on the same machine.
    baseline = _import_seconds("azure.functions")
    app = _import_seconds("function_app")
    figures = [Figure("cold start", "import function_app", app * 1000, "ms",
                      "import azure.functions", baseline * 1000, RUNS,
                      "fresh process per sample; median")]
    worker = _seconds(_WORKER_PROBE)
    figures.append(Figure("cold start", "worker: index function_app.py + first health "
                          "invocation", worker * 1000, "ms", "import azure.functions",
                          baseline * 1000, RUNS,
                          "azure-functions-runtime in-process; fresh process per sample"))
    for function, service in SERVICES.items():
        first = _import_seconds(f"shared.services.{service}", before="import function_app")
        figures.append(Figure("cold start", f"first call of {function}: import "
                              f"shared.services.{service}", first * 1000, "ms",
                              "import function_app", app * 1000, RUNS,
                              "after import function_app, fresh process per sample"))
    return figures
