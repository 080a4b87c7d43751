"""Structured records: one per outcome an operator watches, with stable field names.

``emit(logger, "delivery", {...})`` logs one record whose fields travel two ways:

* as ``record.custom_dimensions`` (a dict, ``"record"`` first), which the local log
  formatters (:mod:`shared.logconfig`) and tests read;
* as the message itself, the same fields as one line of compact JSON. The Python worker
  forwards only a record's formatted message to the Functions host (not ``extra``), so in
  Application Insights the fields are ``parse_json(Message)`` of the trace — the alert
  rules and the workbook in ``infra/`` read them that way. JSON also escapes every control
  character, so no field can forge a log line.

Field names are a contract (README "Telemetry", the KQL in ``infra/queries/``, tests):
rename nothing. Call sites choose their fields; none may hold a secret, a body or a header
value. Texts are cut at :data:`MAX_TEXT` characters and lists at :data:`MAX_ITEMS` items,
so a record stays far below Application Insights' 32 KiB message limit.

Audit records (who submitted or changed credentials) go to the ``dip_edge.audit`` logger,
so a handler, a filter or a table can keep them apart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

RECORD_KEY = "custom_dimensions"
AUDIT_LOGGER = "dip_edge.audit"
MAX_TEXT = 256
MAX_ITEMS = 20
MAX_NESTED_ITEMS = 50  # the monitor's credential list

# The loggers of the Azure SDKs' HTTP request/response logging (INFO, several lines per call).
AZURE_SDK_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy")

audit_logger = logging.getLogger(AUDIT_LOGGER)


class _Json:
    """The message: the fields as JSON, built only if a handler formats the record."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields, separators=(",", ":"), ensure_ascii=True)


def clean(value: Any, *, items: int = MAX_ITEMS) -> Any:
    """A JSON-ready, bounded copy of ``value``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, Mapping):
        return {str(k)[:64]: clean(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [clean(v) for v, _ in zip(value, range(items), strict=False)]
    return str(value)[:MAX_TEXT]


def emit(logger: logging.Logger, record: str, fields: Mapping[str, Any], *,
         level: int = logging.INFO, items: int = MAX_ITEMS) -> dict[str, Any]:
    """Log one structured record; returns its fields (``record`` first)."""
    dims = {"record": record, **{k: clean(v, items=items) for k, v in fields.items()}}
    if logger.isEnabledFor(level):
        logger.log(level, "%s", _Json(dims), extra={RECORD_KEY: dims})
    return dims


def audit(action: str, fields: Mapping[str, Any], *, level: int = logging.INFO) -> None:
    """One audit record: who did what to the credentials, and with what outcome."""
    emit(audit_logger, "audit", {"action": action, **fields}, level=level)


def dependency_failure(dependency: str, operation: str, code: str, *,
                       status: int | None = None, error: str | None = None) -> None:
    """A call to Key Vault (``keyvault``), GlobalSign Atlas (``atlas``), event storage
    (``storage``) or the inbox (``inbox``) that failed in a way that may pass."""
    emit(logging.getLogger(f"dip_edge.dependency.{dependency}"), "dependency",
         {"dependency": dependency, "operation": operation, "code": code,
          "httpStatus": status, "errorType": error}, level=logging.WARNING)


def caller(headers_get) -> dict[str, str | None]:
    """The App Service authentication principal (name and object ID), made safe.

    ``headers_get`` is ``Request.header``. Values are kept to letters, digits and
    ``@ . + - _`` (128 characters): a caller cannot inject anything into a record.
    """
    def safe(name: str) -> str | None:
        value = (headers_get(name) or "").strip()
        if not value:
            return None
        return "".join(c if c.isalnum() or c in "@.+-_ " else "?" for c in value)[:128]

    return {"caller": safe("x-ms-client-principal-name"),
            "callerId": safe("x-ms-client-principal-id")}


def configure_sdk_logging(level_name: str) -> None:
    """Keep the Azure SDKs' HTTP logging at ``level_name`` (AZURE_SDK_LOG_LEVEL)."""
    level = logging.getLevelName(level_name.upper())
    for name in AZURE_SDK_LOGGERS:
        logging.getLogger(name).setLevel(level if isinstance(level, int) else logging.WARNING)
