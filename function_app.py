"""dip-edge's Azure Functions: the table of contents.

Each function adapts Azure types to plain Python and calls ``shared/``. Service modules
are imported inside the functions, so a cold start pays only for the function invoked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.faults import raised_at
from shared.problems import INTERNAL_ERROR, problem_result
from shared.settings import Settings, get_settings
from shared.telemetry import configure_sdk_logging
from shared.web import HttpResult, Request

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger("dip_edge")
# The Azure SDKs log every HTTP request and response at INFO (several lines each): kept at
# AZURE_SDK_LOG_LEVEL (warning) so the host's log holds dip-edge's records.
configure_sdk_logging(get_settings().azure_sdk_log_level)


def to_request(req: func.HttpRequest) -> Request:
    return Request(
        method=req.method.upper(),
        url=req.url,
        headers={k.lower(): v for k, v in req.headers.items()},
        body=req.get_body() or b"",
        route_params=dict(req.route_params or {}),
        params=dict(req.params or {}),
    )


def to_response(result: HttpResult) -> func.HttpResponse:
    return func.HttpResponse(body=result.body, status_code=result.status, headers=result.headers)


def handle(name: str, service: Callable[[Request, Settings], HttpResult],
           req: func.HttpRequest) -> func.HttpResponse:
    """Run a service; an unexpected exception becomes a 500 problem, logged with its type
    and where it was raised (never its message)."""
    try:
        return to_response(service(to_request(req), get_settings()))
    except Exception as exc:  # noqa: BLE001 - the last line of defence; never leak a message
        logger.error("unhandled %s in %s at %s", type(exc).__name__, name, raised_at(exc))
        return to_response(problem_result(INTERNAL_ERROR("The request could not be handled.")))


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import health as service

    return handle("health", service.check, req)


@app.route(route="credentials/validate", methods=["POST"])
def credentials_validate(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import credentials as service

    return handle("credentials_validate", service.validate, req)


@app.route(route="credentials", methods=["GET", "POST"])
def credentials(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import credentials as service

    action = service.submit if req.method.upper() == "POST" else service.describe
    return handle("credentials", action, req)


# Anonymous to the Functions host: a browser's navigation cannot send x-functions-key. The
# page is static; the API calls it makes need the key (shared/services/portal.py says why).
@app.route(route="portal", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def portal(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import portal as service

    return handle("portal", service.page, req)


@app.route(route="webhooks/dip/{channel?}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def dip_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import webhook as service

    return handle("dip_webhook", service.receive, req)


@app.queue_trigger(arg_name="msg", queue_name="%EVENTS_QUEUE%", connection="EVENTS_STORAGE")
def events(msg: func.QueueMessage) -> None:
    from shared.events import handler as service

    service.handle_message(msg.get_body(), msg.id, msg.dequeue_count or 1, get_settings())


@app.timer_trigger(arg_name="timer", schedule="%MONITOR_SCHEDULE%", run_on_startup=False)
def monitor(timer: func.TimerRequest) -> None:
    from shared.services import monitor as service

    service.run_scheduled(get_settings())
