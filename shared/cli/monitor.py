"""``dip-edge monitor [--json]``: one run of the expiry monitor, for pipelines.

Reads the same settings as the function app (environment). Exit 0 when nothing is at
error level (warnings allowed), 1 when something is, 2 on a usage error.
"""

from __future__ import annotations

import json

from shared.cli import EXIT_INVALID, EXIT_OK

NAME = "monitor"
HELP = ("check every known certificate's expiry once (stored Atlas PFX, webhook trust "
        "anchors and pins, signing and TLS certificates); exit 1 if any is at error level")

COLUMNS = ("credential", "subject", "not after", "days left", "level")


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON document")


def run(args) -> int:
    from shared.services.monitor import ERROR, run_checks
    from shared.settings import load_settings

    report = run_checks(load_settings())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(table(report))
    return EXIT_INVALID if report.level == ERROR else EXIT_OK


def table(report) -> str:
    rows = [COLUMNS] + [
        (c.credential, c.subject or "-",
         c.not_after.strftime("%Y-%m-%d %H:%M") if c.not_after else "-",
         str(c.days_left) if c.days_left is not None else "-", c.level.upper())
        for c in report.credentials]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{c.credential}: {c.detail}" for c in report.credentials if c.level != "ok"]
    summary = (f"{len(report.credentials)} checked at {report.checked_at:%Y-%m-%d %H:%M} UTC: "
               f"{report.count('error')} error(s), {report.count('warning')} warning(s) "
               f"(thresholds: warning at {report.warning_days} days, error at "
               f"{report.error_days})")
    return "\n".join([*lines, "", *notes, summary] if notes else [*lines, "", summary])
