"""A trust policy's verdict on one certificate, and the bounded cache of expiring entries
that keeps verdicts (and the AIA fetcher's downloads) for a short while."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from shared.certs.report import CertificateFacts
from shared.problems import Finding


@dataclass(frozen=True)
class PolicyVerdict:
    """The trust policy's answer on one certificate. ``chain`` is leaf-first, anchor last."""

    accepted: bool
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    certificate: CertificateFacts | None
    chain: tuple[x509.Certificate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "certificate": self.certificate.to_dict() if self.certificate else None,
        }


def rejected(finding: Finding, facts: CertificateFacts | None = None) -> PolicyVerdict:
    return PolicyVerdict(False, (finding,), (), facts, ())


class TtlCache[K: Hashable, V]:
    """Bounded LRU of values by key, each with its own deadline (on the caller's clock);
    thread-safe."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, now: float) -> tuple[float, V] | None:
        """The live ``(deadline, value)`` for ``key``, or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: K, deadline: float, value: V) -> None:
        with self._lock:
            self._entries[key] = (deadline, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
