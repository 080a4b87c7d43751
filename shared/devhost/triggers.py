"""Background workers for ``function_app.py``'s timer and queue triggers (``dip-edge serve``).

Each worker is built from the function's own binding, as the Functions host reads it:
``%NAME%`` in a schedule or queue name is the app setting ``NAME``; a queue trigger's
``connection`` names the setting holding the storage connection. A timer runs on its
NCRONTAB schedule; a queue trigger runs only when its connection is configured (locally:
EVENTS_STORAGE pointing at Azurite).

Given the running :class:`~shared.devhost.language_worker.LanguageWorker`, each run is an
invocation through it (timer and queue-message ``TypedData``, as the host sends); without
it, the user function is called with the ``azure.functions`` types directly.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from shared.devhost.queue_poller import QueuePoller
from shared.devhost.timer import TimerWorker
from shared.ncrontab import Schedule
from shared.settings import Setting, Settings, setting_named

logger = logging.getLogger("dip_edge.devhost")

def _expression(value: str) -> Setting[Any] | None:
    """The setting a ``%NAME%`` binding expression names, if it is one of ours."""
    match = re.fullmatch(r"%([A-Za-z0-9_]+)%", value)
    return setting_named(match.group(1)) if match else None


def resolve(value: str, settings: Settings) -> str | None:
    """``%NAME%`` → the setting's value (None when unset); anything else as it is."""
    if not re.fullmatch(r"%([A-Za-z0-9_]+)%", value):
        return value
    setting = _expression(value)
    resolved = setting.of(settings) if setting is not None else None
    return str(resolved) if resolved not in (None, "") else None


def trigger_workers(settings: Settings, functions, language_worker=None) -> list:
    """A worker for every timer and queue function in ``functions.others``."""
    workers: list = []
    for name, function in functions.others.items():
        binding = next(b for b in json.loads(function.get_function_json())["bindings"]
                       if b["direction"] == "IN" and b["type"].endswith("Trigger"))
        call = function.get_user_function()
        worker: TimerWorker | QueuePoller | None
        if binding["type"] == "timerTrigger":
            if language_worker is not None:
                call = _through_timer(language_worker, name)
            worker = _timer(name, binding, call, settings)
        elif binding["type"] == "queueTrigger":
            if language_worker is not None:
                call = _through_queue(language_worker, name)
            worker = _queue(name, binding, call, settings, functions.max_dequeue_count)
        else:
            logger.info("function %s (%s) is not run by the local host", name, binding["type"])
            worker = None
        if worker is not None:
            if language_worker is not None:
                logger.info("function %s runs through the Python worker", name)
            workers.append(worker)
    return workers


def _through_timer(language_worker, name: str):
    return lambda timer: language_worker.invoke_timer(name, past_due=timer.past_due)


def _through_queue(language_worker, name: str):
    def call(message) -> None:
        language_worker.invoke_queue(
            name, message.get_body(), message_id=message.id,
            dequeue_count=message.dequeue_count or 1, pop_receipt=message.pop_receipt or "",
            inserted=message.insertion_time)
    return call


def _timer(name: str, binding: dict, function, settings: Settings) -> TimerWorker | None:
    setting = _expression(binding["schedule"])
    issues = settings.issues_for(setting) if setting is not None else ()
    if issues:  # the Functions host would not run it either
        logger.error("timer function %s not started: %s", name,
                     "; ".join(str(issue) for issue in issues))
        return None
    expression = resolve(binding["schedule"], settings) or ""
    try:
        schedule = Schedule.parse(expression)
    except ValueError as exc:
        logger.error("timer function %s not started: schedule %r: %s", name, expression, exc)
        return None
    logger.info("timer function %s runs on %r", name, expression)
    return TimerWorker(name, schedule, function)


def _queue(name: str, binding: dict, function, settings: Settings,
           max_dequeue_count: int) -> QueuePoller | None:
    from shared.storage.connection import configured, queue_client

    queue = resolve(binding["queueName"], settings)
    # The app's one queue trigger reads the event storage (connection EVENTS_STORAGE).
    if binding["connection"] != "EVENTS_STORAGE" or not configured(settings) or not queue:
        logger.info("queue function %s not started: %s is not set", name,
                    binding["connection"])
        return None
    logger.info("queue function %s reads queue %r", name, queue)
    return QueuePoller(name, lambda q: queue_client(settings, q, base64_messages=False), queue,
                       function, max_dequeue_count=max_dequeue_count)
