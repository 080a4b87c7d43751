"""A secret store in a local directory, for the embedded default (``SECRET_STORE=local``).

Layout under ``<DIP_EDGE_STATE_DIR>/secrets``::

    <name>/versions/<version>.json   {"value", "contentType", "tags", "created"}
    <name>/latest                    the latest version's id

Directories are 0700 and files 0600 (owner only). Every file is written to a temporary
file, flushed with fsync and renamed over the old one, so a reader sees the old or the
new content and a crash leaves no partial file. Versions are never deleted. Values are
stored as given (not encrypted): the directory's permissions are the protection, as for
any local credential file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from shared.private import private_dir
from shared.problems import (
    CONFIG_INVALID,
    SECRET_NOT_FOUND,
    SECRET_STORE_UNAVAILABLE,
    DipEdgeError,
)
from shared.vault.base import StoredSecret, check_value_size

_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")
_VERSION = re.compile(r"^[0-9a-f]{32}$")
# Serialises read-modify-write of tags across the store objects of this process.
_TAGS_LOCK = threading.Lock()


class LocalSecretStore:
    """Implements :class:`shared.vault.base.SecretStore` over a private directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalSecretStore({str(self.root)!r})"

    def get_secret(self, name: str, version: str | None = None) -> StoredSecret:
        folder = self._folder(name)
        try:
            if version is None:
                version = (folder / "latest").read_text().strip()
            if not _VERSION.fullmatch(version):
                raise FileNotFoundError(version)
            document = json.loads((folder / "versions" / f"{version}.json").read_text())
        except FileNotFoundError:
            raise DipEdgeError(SECRET_NOT_FOUND(
                f"No secret {name!r}" + (f" version {version}" if version else "")
                + " in the local store.")) from None
        except (OSError, ValueError) as exc:
            raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
                f"The local store could not read {name!r}: {type(exc).__name__}.")) from None
        return _secret(name, version, document)

    def set_secret(self, name: str, value: str, *, content_type: str | None = None,
                   tags: Mapping[str, str] | None = None) -> StoredSecret:
        folder = self._folder(name)
        check_value_size(name, value)
        version = uuid.uuid4().hex
        created = datetime.now(UTC)
        document = {"value": value, "contentType": content_type, "tags": dict(tags or {}),
                    "created": created.isoformat()}
        try:
            for directory in (self.root, folder, folder / "versions"):
                private_dir(directory)  # also tightens a directory made before
            _atomic_write(folder / "versions" / f"{version}.json", json.dumps(document))
            _atomic_write(folder / "latest", version)
        except OSError as exc:
            raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
                f"The local store could not write {name!r}: {type(exc).__name__}.")) from None
        return _secret(name, version, document)

    def update_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        with _TAGS_LOCK:
            current = self.get_secret(name, version)
            document = {"value": current.value, "contentType": current.content_type,
                        "tags": {**current.tags, **tags},
                        "created": current.created_on.isoformat()
                        if current.created_on else None}
            try:
                _atomic_write(self._folder(name) / "versions" / f"{version}.json",
                              json.dumps(document))
            except OSError as exc:
                raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
                    f"The local store could not update {name!r}: "
                    f"{type(exc).__name__}.")) from None

    def _folder(self, name: str) -> Path:
        if not _NAME.fullmatch(name):  # also keeps names from walking out of the directory
            raise DipEdgeError(CONFIG_INVALID(f"{name!r} is not a valid secret name."))
        return self.root / name


def _secret(name: str, version: str, document: Mapping) -> StoredSecret:
    created = document.get("created")
    return StoredSecret(name=name, value=document["value"], version=version,
                        content_type=document.get("contentType"),
                        tags=dict(document.get("tags") or {}),
                        created_on=datetime.fromisoformat(created) if created else None)


def _atomic_write(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
