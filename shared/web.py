"""Plain HTTP request and response types, so services never see Azure types.

``function_app.py`` converts ``func.HttpRequest`` into :class:`Request` and
:class:`HttpResult` into ``func.HttpResponse``; the local host and tests use the
same conversion, so every path runs the same service code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes = b""
    route_params: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-cased ('' when absent)."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_result(status: int, document: Any, headers: dict[str, str] | None = None) -> HttpResult:
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    return HttpResult(status, body, {"Content-Type": "application/json", **(headers or {})})
