"""How the local host calls an HTTP function: the one seam between the front door
(``server.py``: TLS, HTTP parsing, routing, keys) and the function (``function_app.py``).

The front door hands over a :class:`HostRequest` (what App Service would forward) and
writes back the :class:`HostResponse`. Once :func:`start_worker` has run, a request goes
through Microsoft's Python worker (``shared/devhost/language_worker.py``) as an ``RpcHttp``
invocation, so it is converted exactly as in Azure. Without the worker's libraries (they
are development dependencies) the request is adapted here, as ``func.HttpRequest``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.devhost.functions import HttpRoute

logger = logging.getLogger("dip_edge.devhost")

_worker = None  # the LanguageWorker once started


@dataclass(frozen=True)
class HostRequest:
    method: str
    url: str  # absolute, as the function sees it (https://host[:port]/path?query)
    headers: Mapping[str, str]
    params: Mapping[str, str]
    route_params: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class HostResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


def start_worker(app_dir: Path):
    """Index and load ``app_dir``'s function app in the real worker and dispatch through it
    from now on; None (the adapter stays) when the worker's libraries are missing."""
    global _worker
    from shared.devhost.language_worker import WorkerUnavailable, language_worker

    try:
        _worker = language_worker(Path(app_dir))
    except WorkerUnavailable as exc:
        logger.warning("the Python worker is not used (%s); HTTP functions are called "
                       "through the local adapter", exc)
        return None
    logger.info("HTTP functions run in Microsoft's Python worker (azure-functions-runtime %s)",
                _worker.version)
    return _worker


def invoke_http(route: HttpRoute, request: HostRequest) -> HostResponse:
    """Call ``route``'s function with ``request``; its failures propagate."""
    if _worker is not None:
        reply = _worker.invoke_http(route.name, request.method, request.url,
                                    request.headers, request.params, request.route_params,
                                    request.body)
        return HostResponse(reply.status, reply.headers, reply.body)
    return _adapt(route, request)


def _adapt(route: HttpRoute, request: HostRequest) -> HostResponse:
    import azure.functions as func

    response = route.handler(func.HttpRequest(
        method=request.method, url=request.url, headers=dict(request.headers),
        params=dict(request.params), route_params=dict(request.route_params),
        body=request.body))
    headers = dict(response.headers)
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
    return HostResponse(response.status_code, headers, response.get_body() or b"")
