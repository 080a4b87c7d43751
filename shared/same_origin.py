"""Refuse state-changing requests that a browser sent on another site's behalf (CSRF).

In Azure, App Service authentication keeps the signed-in user in a cookie, which a browser
attaches to any request to the app, including a form another site posts. A request is
taken as browser-borne when it carries ``Origin``, ``Sec-Fetch-Site`` or ``Cookie``; such a
request is refused (403 ``request.cross_origin``) unless

* ``Sec-Fetch-Site``, when present, is ``same-origin``;
* ``Origin``, when present, names this app (the host and port of the request URL); and
* it carries ``X-DIP-Edge-CSRF: 1``, a custom header that another site can only add
  through a CORS preflight, which the app never approves (no CORS is configured).

The page at ``/api/portal`` sends all three. Callers that are not browsers (curl, scripts,
the CLI) send none of ``Origin``, ``Sec-Fetch-Site`` or ``Cookie`` and pass unchanged: for
them the function key (and, in Azure, the Entra ID bearer token) is the whole proof.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.problems import REQUEST_CROSS_ORIGIN, DipEdgeError
from shared.web import Request

HEADER = "x-dip-edge-csrf"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def require_same_origin(request: Request) -> None:
    """Raise ``DipEdgeError(request.cross_origin)`` for a browser request from elsewhere."""
    origin = request.header("origin")
    fetch_site = request.header("sec-fetch-site")
    if origin is None and fetch_site is None and request.header("cookie") is None:
        return
    if fetch_site is not None and fetch_site.strip().lower() != "same-origin":
        raise DipEdgeError(REQUEST_CROSS_ORIGIN(
            "A browser sent this request from another site (Sec-Fetch-Site); it is refused."))
    if origin is not None and (_authority(origin) is None
                               or _authority(origin) != _own_authority(request)):
        raise DipEdgeError(REQUEST_CROSS_ORIGIN(
            "The request's Origin is not this app; it is refused."))
    if (request.header(HEADER) or "").strip() != "1":
        raise DipEdgeError(REQUEST_CROSS_ORIGIN(
            "A browser request must carry the header X-DIP-Edge-CSRF: 1 (the page at "
            "/api/portal sends it)."))


def _own_authority(request: Request) -> tuple[str, int] | None:
    # Behind App Service the worker is reached over plain HTTP with the public Host kept;
    # X-Forwarded-Proto says the scheme the browser used (so, its default port).
    scheme = (request.header("x-forwarded-proto") or "").split(",")[0].strip().lower()
    return _authority(request.url, scheme or None)


def _authority(url: str, scheme: str | None = None) -> tuple[str, int] | None:
    """(host, port) of an absolute URL; None for anything else (``Origin: null``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(scheme or parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port
