"""Run every benchmark module and print the table (see ``bench/__init__.py``)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="module names (e.g. bench_webhook); all if none")
    args = parser.parse_args(argv)
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")]
    figures = []
    for name in sorted(names):
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures += importlib.import_module(f"bench.{name}").run()
    print("| area | figure | median | baseline | baseline median | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for f in figures:
        base = f"{f.baseline_median:.3g} {f.unit}" if f.baseline_median is not None else ""
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else ""
        print(f"| {f.area} | {f.name} | {f.median:.3g} {f.unit} | {f.baseline_name or ''} "
              f"| {base} | {ratio} |")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    path.write_text(json.dumps([f.to_dict() for f in figures], indent=2))
    print(f"\nwritten to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
