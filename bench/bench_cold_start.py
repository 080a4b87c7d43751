"""Cold start: ``import function_app`` against ``import azure.functions`` alone, what
each function's first call adds by importing its service module, and Microsoft's Python
worker (``azure-functions-runtime``) indexing ``function_app.py`` and answering its first
health invocation, as the Functions host starts it.

Each sample is a fresh ``python -c`` process timing its own import (interpreter start-up
excluded), so the ratio shows what dip-edge adds on top of the Functions library. The
first-call figures time the import of its module (``shared.services.<x>``, or the events
handler) in a process that has already
imported ``function_app`` (the function's own lazy import), against that base import.
The worker figure times, in a fresh process, importing the worker and the protocol
messages, WorkerInitRequest (indexing), FunctionsMetadataRequest, a FunctionLoadRequest per
function and the first ``GET /api/health`` InvocationRequest, up to its 200 RpcHttp;
against bare ``import azure.functions`` and against the same first answer without the
worker (``function_app.health`` called with a ``func.HttpRequest``), samples alternating.
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
WORKER_RUNS = 15
_PROBE = ("import time; {before}; t = time.perf_counter(); import {module}; "
          "print(time.perf_counter() - t)")
_WORKER_PROBE = (
    "import time; t = time.perf_counter(); from pathlib import Path; "
    "from shared.devhost.language_worker import LanguageWorker; "
    "reply = LanguageWorker(Path('.')).invoke_http('health', 'GET', "
    "'https://localhost/api/health', {}, {}, {}, b''); "
    "elapsed = time.perf_counter() - t; assert reply.status == 200, reply.status; "
    "print(elapsed)")
# The same first answer without the worker: the user function called with func.HttpRequest.
_ADAPTER_PROBE = (
    "import time; t = time.perf_counter(); import azure.functions as func; "
    "import function_app; "
    "reply = function_app.health(func.HttpRequest('GET', 'https://localhost/api/health', "
    "body=b'')); "
    "elapsed = time.perf_counter() - t; assert reply.status_code == 200, reply.status_code; "
    "print(elapsed)")
# function name -> the module its first call imports
SERVICES = {"health": "shared.services.health",
            "credentials / credentials_validate": "shared.services.credentials",
            "dip_webhook": "shared.services.webhook", "events": "shared.events.handler",
            "monitor": "shared.services.monitor"}


def _medians(*probes: str, runs: int = RUNS) -> list[float]:
    """The median of what each probe prints, each sample a fresh interpreter; with several
    probes their samples alternate, so that all see the same moments of a noisy machine."""
    samples: list[list[float]] = [[] for _ in probes]
    with tempfile.TemporaryDirectory() as state:
        # Health answers 200 only with identity rules (the webhook fails closed without):
        # "any" is the explicit test opt-out.
        env = {**os.environ, "DIP_EDGE_STATE_DIR": state, "DIP_CLIENT_IDENTITIES": "any"}
        for _ in range(runs):
            for probe, out in zip(probes, samples, strict=True):
                done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                                      capture_output=True, text=True, check=True)
                out.append(float(done.stdout.strip()))
    return [statistics.median(out) for out in samples]


def _import_seconds(module: str, before: str = "pass") -> float:
    return _medians(_PROBE.format(module=module, before=before))[0]


def run() -> list[Figure]:
    # Interleave nothing: both medians come from the same run on the same machine.
    baseline = _import_seconds("azure.functions")
    app = _import_seconds("function_app")
    figures = [Figure("cold start", "import function_app", app * 1000, "ms",
                      "import azure.functions", baseline * 1000, RUNS,
                      "fresh process per sample; median")]
    worker, bare, direct = _medians(
        _WORKER_PROBE, _PROBE.format(module="azure.functions", before="pass"),
        _ADAPTER_PROBE, runs=WORKER_RUNS)
    name = "worker: index function_app.py + first health invocation"
    note = "azure-functions-runtime in-process; fresh processes, the three alternating"
    figures += [
        Figure("cold start", name, worker * 1000, "ms", "import azure.functions",
               bare * 1000, WORKER_RUNS, note),
        Figure("cold start", name, worker * 1000, "ms",
               "import function_app + first health call, no worker", direct * 1000,
               WORKER_RUNS, note)]
    for function, module in SERVICES.items():
        first = _import_seconds(module, before="import function_app")
        figures.append(Figure("cold start", f"first call of {function}: import {module}",
                              first * 1000, "ms",
                              "import function_app", app * 1000, RUNS,
                              "after import function_app, fresh process per sample"))
    return figures
