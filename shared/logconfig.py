"""Local log output (``dip-edge serve --log-format json|text``).

``json``: one JSON object per line — ``time``, ``level``, ``logger``, then a structured
record's fields (:mod:`shared.telemetry`) or, for any other record, ``message``.
``text``: ``time LEVEL logger: message``, a structured record as ``name key=value ...``.
In Azure the Functions host formats records itself; this module is for the local host.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from shared.telemetry import RECORD_KEY, configure_sdk_logging

FORMATS = ("text", "json")


def _time(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                "logger": record.name}
        fields = getattr(record, RECORD_KEY, None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), ensure_ascii=True, default=str)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and value.isprintable() and " " not in value else \
            json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        fields = getattr(record, RECORD_KEY, None)
        if isinstance(fields, dict):
            name = fields.get("record", "record")
            pairs = " ".join(f"{k}={_value(v)}" for k, v in fields.items()
                             if k != "record" and v is not None and v != [])
            record.message = f"{name} {pairs}"
        return super().formatMessage(record)


def configure(log_format: str = "text", *, level: int = logging.INFO,
              stream: TextIO | None = None) -> None:
    """Send every record at ``level`` and above to ``stream`` (stderr) in ``log_format``;
    the Azure SDKs' loggers stay at WARNING until AZURE_SDK_LOG_LEVEL says otherwise."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    configure_sdk_logging("warning")
