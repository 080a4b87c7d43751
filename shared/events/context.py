"""What every event handler gets: settings, the message's id, and lazily opened stores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.storage.reports import ReportStore
    from shared.vault.base import SecretStore

logger = logging.getLogger("dip_edge.events")


class EventContext:
    """Opened once per queue message; the stores are opened only if a handler needs them."""

    def __init__(self, settings: Settings, message_id: str | None) -> None:
        self.settings = settings
        self.message_id = message_id

    @cached_property
    def reports(self) -> ReportStore:
        from shared.storage.reports import open_reports

        return open_reports(self.settings)

    @cached_property
    def store(self) -> SecretStore:
        from shared.vault import open_store

        return open_store(self.settings)


@dataclass(frozen=True)
class Handled:
    """What became of one event: ``action`` and the report that records it, if any.

    Actions: ``validated``, ``duplicate`` (already reported), ``expiry``, ``ignored``,
    ``rejected`` (a malformed event), ``failed`` (a permanent secret-store answer),
    ``superseded`` (the upload was replaced).
    ``outcome`` is the report's (``passed``/``failed``), or for an expiry event
    ``near_expiry``/``expired``; ``codes`` are the report's error codes.
    """

    action: str
    report: str | None = None
    outcome: str | None = None
    codes: tuple[str, ...] = ()


def report_outcome(document: dict) -> tuple[str, tuple[str, ...]]:
    return document["outcome"], tuple(e["code"] for e in document["errors"])
