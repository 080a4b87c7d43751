"""Cold start: ``import function_app`` against ``import azure.functions`` alone, and what
each function's first call adds by importing its service module.

Each sample is a fresh ``python -c`` process timing its own import (interpreter start-up
excluded), so the ratio shows what dip-edge adds on top of the Functions library. The
first-call figures time ``import shared.services.<x>`` in a process that has already
imported ``function_app`` (the function's own lazy import), against that base import.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench import Figure

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
_PROBE = ("import time; {before}; t = time.perf_counter(); import {module}; "
          "print(time.perf_counter() - t)")
# function name -> the service module its first call imports
SERVICES = {"health": "health", "credentials / credentials_validate": "credentials",
            "dip_webhook": "webhook", "events": "events", "monitor": "monitor"}


def _import_seconds(module: str, before: str = "pass") -> float:
    samples = []
    for _ in range(RUNS):
        code = _PROBE.format(module=module, before=before)
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def run() -> list[Figure]:
    # Interleave nothing: both medians come from the same run on the same machine.
    baseline = _import_seconds("azure.functions")
    app = _import_seconds("function_app")
    figures = [Figure("cold start", "import function_app", app * 1000, "ms",
                      "import azure.functions", baseline * 1000, RUNS,
                      "fresh process per sample; median")]
    for function, service in SERVICES.items():
        first = _import_seconds(f"shared.services.{service}", before="import function_app")
        figures.append(Figure("cold start", f"first call of {function}: import "
                              f"shared.services.{service}", first * 1000, "ms",
                              "import function_app", app * 1000, RUNS,
                              "after import function_app, fresh process per sample"))
    return figures
