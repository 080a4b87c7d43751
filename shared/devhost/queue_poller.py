"""Feed a queue-triggered function of ``function_app.py`` from a Storage queue, as the
Functions host does: base64-decoded bodies, dequeue counts, and a poison queue.

A message is deleted after the function returns. If the function raises, the message
becomes visible again after ``retry_delay`` seconds; once it has been dequeued
``max_dequeue_count`` times (host.json ``maxDequeueCount``) it is copied unchanged to
``<queue>-poison`` and deleted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("dip_edge.devhost")


class QueuePoller:
    """A :class:`~shared.devhost.server.Worker` for one queue trigger."""

    def __init__(self, name: str, client_factory: Callable[[str], Any], queue: str,
                 function: Callable, *, max_dequeue_count: int = 5, batch_size: int = 8,
                 visibility_timeout: int = 60, retry_delay: int = 30,
                 max_idle_wait: float = 2.0) -> None:
        self.name = name
        self.client_factory = client_factory  # queue name -> QueueClient (no decode policy)
        self.queue = queue
        self.function = function
        self.max_dequeue_count = max_dequeue_count
        self.batch_size = batch_size
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self.max_idle_wait = max_idle_wait

    def run(self, stop: threading.Event) -> None:
        client = self.client_factory(self.queue)
        wait = 0.05
        while not stop.is_set():
            try:
                handled = self.poll_once(client)
            except Exception as exc:  # noqa: BLE001 - storage away: keep trying, slowly
                logger.warning("queue %s unreachable (%s)", self.queue, type(exc).__name__)
                handled = 0
            wait = 0.05 if handled else min(wait * 2, self.max_idle_wait)
            stop.wait(wait)

    def poll_once(self, client) -> int:
        """Receive one batch and run the function on each message; the count handled."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            messages = list(client.receive_messages(
                messages_per_page=self.batch_size, max_messages=self.batch_size,
                visibility_timeout=self.visibility_timeout))
        except ResourceNotFoundError:
            client.create_queue()
            return 0
        for message in messages:
            self._deliver(client, message)
        return len(messages)

    def _deliver(self, client, message) -> None:
        import azure.functions.queue as queue_types

        from shared.storage.connection import decode_queue_text

        body = decode_queue_text(message.content)
        request = queue_types.QueueMessage(
            id=message.id, body=body, dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on, insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
        try:
            self.function(request)
        except Exception as exc:  # noqa: BLE001 - a failed run: retry or poison, as the host
            if message.dequeue_count >= self.max_dequeue_count:
                # Through the worker, the function's own exception type is reported.
                self._poison(client, message, getattr(exc, "exception_type",
                                                      type(exc).__name__))
            else:
                client.update_message(message, visibility_timeout=self.retry_delay)
            return
        client.delete_message(message)

    def _poison(self, client, message, reason: str) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        poison = self.client_factory(f"{self.queue}-poison")
        try:
            poison.send_message(message.content)  # unchanged, as the host copies it
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                poison.create_queue()
            poison.send_message(message.content)
        client.delete_message(message)
        logger.error("message %s of queue %s failed %d times (%s); moved to %s-poison",
                     message.id, self.queue, message.dequeue_count, reason, self.queue)
