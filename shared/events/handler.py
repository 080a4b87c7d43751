"""The ``events`` queue function: Event Grid events about Key Vault and PFX uploads.

``handle_message(body, message_id, dequeue_count, settings)`` decodes the message (raw or
base64 JSON; one event or an array; Event Grid or CloudEvents schema) and dispatches
each event:

- ``Microsoft.KeyVault.{Secret,Certificate}NewVersionCreated`` for SECRET_NAME_PFX →
  validate that version (:mod:`shared.events.secret_events`);
- ``...NearExpiry`` / ``...Expired`` → a warning / error record;
- ``Microsoft.Storage.BlobCreated`` in UPLOADS_CONTAINER → :mod:`shared.events.uploads`;
- anything else → ignored with a debug record.

Failure policy (the queue's maxDequeueCount is :data:`MAX_DEQUEUE_COUNT`, as in host.json):

- *permanent* (a malformed event, a PFX that is not PKCS#12, a secret version that is
  gone...): recorded in a failed report, logged, and the message completes — retrying
  would not change the answer. So are the secret store's permanent answers
  (:data:`PERMANENT_STORE_ERRORS`: a missing role, a name deleted but recoverable, a
  disabled version, a value too large), recorded in ``failed/<sha256 of the message>.json``
  with what the operator must do; the message can be replayed once that is done;
- *transient* (secret store, storage or GlobalSign unavailable; a misconfiguration that
  can be fixed; an unexpected exception): raised, so the queue redelivers the message;
- on the last delivery, a transient failure is written to ``<EVENTS_QUEUE>-poison`` as
  JSON ``{"reason": {code, detail}, "messageId", "dequeueCount", "failedAt", "queue",
  "body"}`` and the message completes; if even that write fails, the error is raised and
  the host moves the bare message to the poison queue itself.

Every step is idempotent (reports are create-only and written last), so a redelivery
repeats nothing harmful.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.events.context import EventContext, Handled, logger
from shared.logtext import shown
from shared.problems import (
    INTERNAL_ERROR,
    SECRET_DELETED_RECOVERABLE,
    SECRET_DISABLED,
    SECRET_FORBIDDEN,
    SECRET_TOO_LARGE,
    DipEdgeError,
    Finding,
)
from shared.settings import Settings
from shared.telemetry import emit

if TYPE_CHECKING:
    from shared.events.schema import Event

MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount
POISON_SUFFIX = "-poison"
MAX_POISON_BODY_CHARS = 40_000  # a queue message holds 64 KiB, base64 inflates by 4/3
# Answers of the secret store that no redelivery changes: an operator must act first.
PERMANENT_STORE_ERRORS = frozenset({SECRET_FORBIDDEN, SECRET_DELETED_RECOVERABLE,
                                    SECRET_DISABLED, SECRET_TOO_LARGE})


def handle_message(body: bytes, message_id: str | None, dequeue_count: int,
                   settings: Settings) -> None:
    """Handle one queue message; raises only to ask the queue for another delivery."""
    ctx = EventContext(settings, message_id)
    try:
        handle_events(body, ctx)
    except Exception as exc:
        finding = exc.finding if isinstance(exc, DipEdgeError) else INTERNAL_ERROR(
            f"unexpected {type(exc).__name__} while handling the event")
        if dequeue_count < MAX_DEQUEUE_COUNT:
            logger.warning("event message %s failed on delivery %d of %d (%s: %s); it will "
                           "be retried", shown(message_id), dequeue_count, MAX_DEQUEUE_COUNT,
                           finding.code, shown(finding.detail))
            _record_failure("retry", message_id, dequeue_count, finding)
            raise
        _poison(body, message_id, dequeue_count, finding, settings)


def _record_failure(outcome: str, message_id: str | None, dequeue_count: int,
                    finding: Finding) -> None:
    """The ``event`` record of a message that failed: ``retry``, ``poisoned`` (written to
    the poison queue) or ``poison_failed`` (the host moves it there)."""
    emit(logger, "event", {"action": "delivery_failed", "outcome": outcome,
                           "codes": [finding.code], "messageId": message_id,
                           "dequeueCount": dequeue_count},
         level=logging.WARNING if outcome == "retry" else logging.ERROR)


def handle_events(body: bytes, ctx: EventContext) -> list[Handled]:
    """Dispatch every event of a message; permanent failures become failed reports."""
    from shared.events.schema import EventError, parse_message

    try:
        events = parse_message(body)
    except EventError as err:
        handled = _reject(body, ctx, err.finding)
        emit(logger, "event", {"eventType": None, "action": handled.action,
                               "outcome": handled.outcome, "codes": handled.codes,
                               "report": handled.report, "messageId": ctx.message_id},
             level=logging.WARNING)
        return [handled]
    outcomes = []
    for event in events:
        try:
            handled = dispatch(event, ctx)
        except EventError as err:  # a well-formed envelope with unusable data
            handled = _reject(body, ctx, err.finding, event=event.summary())
        except DipEdgeError as err:
            if not err.is_(*PERMANENT_STORE_ERRORS):
                raise
            handled = _reject(body, ctx, err.finding, event=event.summary(), kind="failed")
        outcomes.append(handled)
        emit(logger, "event", {
            "eventType": event.type, "eventId": event.id, "subject": event.subject,
            "action": handled.action, "outcome": handled.outcome, "codes": handled.codes,
            "report": handled.report, "messageId": ctx.message_id},
             level=logging.DEBUG if handled.action == "ignored" else logging.INFO)
    return outcomes


def dispatch(event: Event, ctx: EventContext) -> Handled:
    from shared.events import secret_events, uploads

    if event.type in secret_events.EVENT_TYPES:
        return secret_events.handle(event, ctx)
    if event.type == uploads.EVENT_TYPE:
        return uploads.handle(event, ctx)
    logger.debug("ignored event %s of type %s", shown(event.id), shown(event.type))
    return Handled("ignored")


def _reject(body: bytes, ctx: EventContext, finding: Finding, *,
            event: dict | None = None, kind: str = "invalid") -> Handled:
    """Record a message that cannot be handled, keyed by its content (idempotent):
    ``invalid`` (never) or ``failed`` (not until an operator acts)."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    name = f"{kind}/{digest}.json"
    document = {
        "schemaVersion": 1,
        "kind": kind,
        "outcome": "failed",
        "valid": False,
        "handledAt": datetime.now(UTC).isoformat(),
        "messageId": ctx.message_id,
        "event": event,
        "invalid": {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)},
        "errors": [finding.to_dict()],
        "warnings": [],
    }
    verb = "rejected" if kind == "invalid" else "failed without retry"
    if ctx.reports.create(name, document):
        logger.error("event message %s %s (%s: %s); report %s", shown(ctx.message_id), verb,
                     finding.code, shown(finding.detail), ctx.reports.location(name))
    else:
        logger.info("event message already reported: %s", ctx.reports.location(name))
    return Handled("rejected" if kind == "invalid" else "failed", name, "failed",
                   (finding.code,))


def _poison(body: bytes, message_id: str | None, dequeue_count: int, finding: Finding,
            settings: Settings) -> None:
    from shared.storage.connection import send_message

    queue = settings.events_queue + POISON_SUFFIX
    text = body.decode("utf-8", "replace")
    document = {
        "reason": finding.to_dict(),
        "messageId": message_id,
        "dequeueCount": dequeue_count,
        "failedAt": datetime.now(UTC).isoformat(),
        "queue": settings.events_queue,
        "body": text[:MAX_POISON_BODY_CHARS],
        "bodyTruncated": len(text) > MAX_POISON_BODY_CHARS,
        "bodySha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        send_message(settings, queue, json.dumps(document))
    except Exception as exc:
        logger.error("event message %s failed %d times (%s: %s) and could not be written to "
                     "%s (%s); the host moves it there", shown(message_id), dequeue_count,
                     finding.code, shown(finding.detail), queue, type(exc).__name__)
        _record_failure("poison_failed", message_id, dequeue_count, finding)
        raise
    logger.error("event message %s failed %d times and was moved to %s: %s: %s",
                 shown(message_id), dequeue_count, queue, finding.code, shown(finding.detail))
    _record_failure("poisoned", message_id, dequeue_count, finding)
