"""The function app through Microsoft's Python worker (``azure-functions-runtime``), called
with the host's protocol messages (``shared/devhost/language_worker.py``): what Azure does,
where ``tests/support/functions.py`` calls the user functions directly."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from shared.devhost.language_worker import HttpReply, LanguageWorker, language_worker

ROOT = Path(__file__).resolve().parents[2]


def worker() -> LanguageWorker:
    """The test process's one worker, function_app.py indexed and loaded (its state is
    global, so it is started once and shared)."""
    return language_worker(ROOT)


def call_http(name: str, method: str, url: str, *, body: bytes = b"",
              headers: dict[str, str] | None = None,
              route_params: dict[str, str] | None = None) -> HttpReply:
    """An ``RpcHttp`` invocation; the query parameters are taken from ``url``, as the host
    does."""
    return worker().invoke_http(name, method, url, headers or {},
                                dict(parse_qsl(urlsplit(url).query)), route_params or {}, body)
