"""The secret-store interface shared by Key Vault and the local directory store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StoredSecret:
    """One version of a secret. ``repr`` leaves the value out."""

    name: str
    value: str = field(repr=False)
    version: str
    content_type: str | None
    tags: Mapping[str, str]
    created_on: datetime | None
    expires_on: datetime | None = None


class SecretStore(Protocol):
    """Versioned secrets, as Key Vault keeps them: every write makes a new version."""

    def get_secret(self, name: str, version: str | None = None) -> StoredSecret:
        """The latest version, or the named one.

        Raises ``DipEdgeError(secrets.not_found)`` / ``DipEdgeError(secrets.unavailable)``.
        """
        ...

    def set_secret(self, name: str, value: str, *, content_type: str | None = None,
                   tags: Mapping[str, str] | None = None) -> StoredSecret:
        """Write a new version (which becomes the latest) and return it."""
        ...

    def update_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Merge ``tags`` into the tags of one version."""
        ...
