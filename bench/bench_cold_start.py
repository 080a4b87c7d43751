"""Cold start: ``import function_app`` against ``import azure.functions`` alone.

Each sample is a fresh ``python -c`` process timing its own import (interpreter start-up
excluded), so the ratio shows what dip-edge adds on top of the Functions library.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench import Figure

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
_PROBE = ("import time; t = time.perf_counter(); import {module}; "
          "print(time.perf_counter() - t)")


def _import_seconds(module: str) -> float:
    samples = []
    for _ in range(RUNS):
        done = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def run() -> list[Figure]:
    # Interleave nothing: both medians come from the same run on the same machine.
    baseline = _import_seconds("azure.functions")
    app = _import_seconds("function_app")
    return [Figure("cold start", "import function_app", app * 1000, "ms",
                   "import azure.functions", baseline * 1000, RUNS,
                   "fresh process per sample; median")]
