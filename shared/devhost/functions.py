"""The functions of ``function_app.py`` as the local host sees them.

``FunctionTable.load(app, host_json)`` calls ``app.get_functions()`` once (it may be called
only once per app object) and reads each function's function.json: HTTP triggers become
:class:`HttpRoute` objects (route template, methods, the ``routePrefix`` from host.json);
every other trigger (timer, queue) is kept in :attr:`FunctionTable.others` for background
workers to run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# {name}, {name?}, {name:constraint}, {name:constraint?}, {*name}
_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}")


@dataclass(frozen=True)
class HttpRoute:
    name: str
    template: str  # as declared, e.g. "webhooks/dip/{channel?}"
    path: str  # with the prefix, e.g. "/api/webhooks/dip/{channel?}"
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]
    handler: Any  # the user function: handler(func.HttpRequest) -> func.HttpResponse

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters if ``path`` (URL-encoded, no query) matches, else None."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items() if v is not None}


def compile_route(prefix: str, template: str) -> tuple[str, re.Pattern[str]]:
    """The full path and the regex of a Functions route template.

    An optional parameter at the end also matches the path without it (and without the
    slash before it), as the Functions host does; matching ignores case, as Azure's does.
    """
    segments = [s for s in f"{prefix.strip('/')}/{template.strip('/')}".split("/") if s]
    regex = ""
    for segment in segments:
        parts, last = [], 0
        optional = False
        for found in _PARAMETER.finditer(segment):
            parts.append(re.escape(segment[last:found.start()]))
            catch_all, name, question = found.groups()
            body = ".*" if catch_all else "[^/]+"
            parts.append(f"(?P<{name}>{body})")
            optional = optional or bool(question) or bool(catch_all)
            last = found.end()
        parts.append(re.escape(segment[last:]))
        piece = "/" + "".join(parts)
        regex += f"(?:{piece})?" if optional and segment.startswith("{") else piece
    return "/" + "/".join(segments), re.compile(regex or "/", re.IGNORECASE)


def _extensions(host_json: Path) -> dict[str, Any]:
    try:
        document = json.loads(host_json.read_text())
    except (OSError, ValueError):
        return {}
    extensions = document.get("extensions") if isinstance(document, dict) else None
    return extensions if isinstance(extensions, dict) else {}


def route_prefix(host_json: Path) -> str:
    """``extensions.http.routePrefix`` of host.json; ``api`` when absent."""
    prefix = _extensions(host_json).get("http", {}).get("routePrefix")
    return "api" if prefix is None else prefix


def max_dequeue_count(host_json: Path) -> int:
    """``extensions.queues.maxDequeueCount`` of host.json; the host's default 5 when absent."""
    count = _extensions(host_json).get("queues", {}).get("maxDequeueCount")
    return count if isinstance(count, int) and count > 0 else 5


@dataclass
class FunctionTable:
    routes: list[HttpRoute]
    others: Mapping[str, Any] = field(default_factory=dict)  # name -> azure Function object
    max_dequeue_count: int = 5  # host.json's, for the queue triggers

    @classmethod
    def load(cls, app, host_json: Path) -> FunctionTable:
        prefix = route_prefix(host_json)
        routes, others = [], {}
        for function in app.get_functions():
            bindings = json.loads(function.get_function_json())["bindings"]
            trigger = next(b for b in bindings if b["direction"] == "IN"
                           and b["type"].endswith("Trigger"))
            name = function.get_function_name()
            if trigger["type"] != "httpTrigger":
                others[name] = function
                continue
            template = trigger.get("route") or name
            path, pattern = compile_route(prefix, template)
            methods = frozenset(m.upper() for m in trigger.get("methods") or
                                ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"))
            routes.append(HttpRoute(name, template, path, methods,
                                    str(trigger.get("authLevel", "FUNCTION")), pattern,
                                    function.get_user_function()))
        return cls(routes, others, max_dequeue_count(host_json))

    def resolve(self, path: str) -> list[tuple[HttpRoute, dict[str, str]]]:
        """Every route whose template matches ``path``, with its parameters."""
        out = []
        for route in self.routes:
            params = route.match(path)
            if params is not None:
                out.append((route, params))
        return out
