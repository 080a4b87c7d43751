"""``GET /api/portal``: the Certificate Admin's page (the DIP's "Certificates" step).

One self-contained HTML document: its style and script (``shared/portal/``) are inlined
and allowed by their SHA-256 hashes in a strict Content-Security-Policy, so nothing else
runs and nothing is fetched from elsewhere. The page is the same static bytes for every
caller and holds no data: what is stored, and every check, comes from the credential API
(``/api/credentials*``), which the page calls with the function key the admin gives it
and with the same-origin proof (``shared.same_origin``).

The function is anonymous at the Functions level because a browser's navigation cannot
carry ``x-functions-key``, and ``?code=`` would put the key in the URL (history, logs).
In Azure, App Service authentication (Entra ID) still stands in front of it like every
ops-app route but ``/api/health``; locally, ``dip-edge serve`` demands the client
certificate at the handshake. See the README ("The Certificate Admin's page").
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources
from typing import TYPE_CHECKING

from shared.certs import MAX_PFX_BYTES
from shared.web import HttpResult

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.web import Request


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def _document(max_pfx_bytes: int) -> tuple[bytes, str]:
    """The page and its Content-Security-Policy."""
    folder = resources.files("shared.portal")
    style = folder.joinpath("page.css").read_text(encoding="utf-8")
    script = folder.joinpath("page.js").read_text(encoding="utf-8")
    html = (folder.joinpath("page.html").read_text(encoding="utf-8")
            .replace("{{max_pfx_bytes}}", str(max_pfx_bytes))
            .replace("{{max_pfx_kib}}", str(max_pfx_bytes // 1024))
            .replace("{{style}}", style)
            .replace("{{script}}", script))
    policy = "; ".join([
        "default-src 'none'",
        f"script-src {_hash(script)}",
        f"style-src {_hash(style)}",
        "connect-src 'self'",
        "img-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ])
    return html.encode("utf-8"), policy


def page(request: Request, settings: Settings) -> HttpResult:
    body, policy = _document(MAX_PFX_BYTES)
    return HttpResult(200, body, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cache-Control": "no-store",
    })
