"""Call the functions declared in ``function_app.py`` through their Azure types."""

from __future__ import annotations

from functools import cache

import azure.functions as func

import function_app


@cache
def functions() -> dict[str, object]:
    # get_functions() may be called once per app object (it validates names statefully).
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def user_function(name: str):
    return functions()[name].get_user_function()


def call_http(name: str, method: str, url: str, *, body: bytes = b"",
              headers: dict[str, str] | None = None,
              route_params: dict[str, str] | None = None) -> func.HttpResponse:
    request = func.HttpRequest(method=method, url=url, body=body, headers=headers or {},
                               route_params=route_params or {})
    return user_function(name)(request)
