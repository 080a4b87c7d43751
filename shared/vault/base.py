"""The secret-store interface shared by Key Vault and the local directory store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.problems import SECRET_TOO_LARGE, DipEdgeError

# Key Vault keeps a secret value of at most 25,600 characters; the local store keeps the
# same limit, so what works locally works in Azure.
MAX_SECRET_CHARS = 25_600


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


def check_value_size(name: str, value: str, what: str | None = None) -> None:
    """Raise ``secrets.too_large`` for a value longer than a secret may be."""
    if len(value) > MAX_SECRET_CHARS:
        raise DipEdgeError(SECRET_TOO_LARGE(
            f"{what or f'The value for {name!r}'} is {len(value):,} characters; a secret "
            f"holds at most {MAX_SECRET_CHARS:,} (Key Vault's limit)."))
