"""How the local host calls an HTTP function: the one seam between the front door
(``server.py``: TLS, HTTP parsing, routing, keys) and the function (``function_app.py``).

The front door hands over a :class:`HostRequest` (what App Service would forward) and
writes back the :class:`HostResponse`; how the function is reached is this module's
business alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import azure.functions as func

from shared.devhost.functions import HttpRoute


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


def invoke_http(route: HttpRoute, request: HostRequest) -> HostResponse:
    """Call ``route``'s function with ``request``; its exceptions propagate."""
    response = route.handler(func.HttpRequest(
        method=request.method, url=request.url, headers=dict(request.headers),
        params=dict(request.params), route_params=dict(request.route_params),
        body=request.body))
    headers = dict(response.headers)
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
    return HostResponse(response.status_code, headers, response.get_body() or b"")
