"""Run a timer-triggered function of ``function_app.py`` on its NCRONTAB schedule."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from shared.faults import raised_at
from shared.ncrontab import Schedule

logger = logging.getLogger("dip_edge.devhost")


class TimerWorker:
    """A :class:`~shared.devhost.server.Worker` calling ``function(TimerRequest)`` at each
    occurrence of ``schedule``, as the Functions host does (never two runs at once)."""

    def __init__(self, name: str, schedule: Schedule, function: Callable,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.name = name
        self.schedule = schedule
        self.function = function
        self.clock = clock
        self.runs = 0

    def run(self, stop: threading.Event) -> None:
        from azure.functions.timer import TimerRequest

        due = self.schedule.next_after(self.clock())
        while not stop.wait(max(0.0, (due - self.clock()).total_seconds())):
            late = (self.clock() - due).total_seconds() > 60
            try:
                self.function(TimerRequest(past_due=late))
            except Exception as exc:  # noqa: BLE001 - the host logs a failed run and goes on
                logger.error("timer function %s failed: %s at %s", self.name,
                             type(exc).__name__, raised_at(exc))
            self.runs += 1
            due = self.schedule.next_after(max(due, self.clock()))
