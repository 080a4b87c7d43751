"""Where validation and monitor reports are kept: JSON documents by name.

With the event storage configured (EVENTS_STORAGE, or its identity-based
``EVENTS_STORAGE__*`` form), reports are blobs in REPORTS_CONTAINER; otherwise files under
``<DIP_EDGE_STATE_DIR>/reports`` (the local host without Azurite). Names are paths such as
``keyvault/globalsign-pfx/<version>.json``. :meth:`ReportStore.create` writes only if the
name is free, which is what makes event handling idempotent::

    reports = open_reports(settings)
    if not reports.create(name, document):
        ...  # another delivery of the same event got there first
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from shared.private import private_dir
from shared.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9._=-]+(/[A-Za-z0-9._=-]+)*$")


def _encode(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _check_name(name: str) -> str:
    if not _NAME.match(name) or any(part in {".", ".."} for part in name.split("/")):
        raise ValueError(f"not a report name: {name!r}")
    return name


class ReportStore(Protocol):
    def location(self, name: str) -> str:
        """Where an operator finds the report (container/name or a file path)."""

    def get(self, name: str) -> dict | None: ...

    def create(self, name: str, document: Any) -> bool:
        """Write if absent; False (and no write) when the name is taken."""

    def put(self, name: str, document: Any) -> None:
        """Write, replacing any previous document."""


class BlobReports:
    def __init__(self, settings: Settings) -> None:
        from shared.storage.connection import blob_service

        self.container_name = settings.reports_container
        self._container = blob_service(settings).get_container_client(self.container_name)

    def location(self, name: str) -> str:
        return f"{self.container_name}/{_check_name(name)}"

    def get(self, name: str) -> dict | None:
        from azure.core.exceptions import ResourceNotFoundError

        from shared.storage.connection import storage_errors

        with storage_errors(f"reading report {self.location(name)}"):
            try:
                return json.loads(self._container.download_blob(name).readall())
            except ResourceNotFoundError:
                return None

    def create(self, name: str, document: Any) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._upload(name, document, overwrite=False)
        except ResourceExistsError:
            return False
        return True

    def put(self, name: str, document: Any) -> None:
        self._upload(name, document, overwrite=True)

    def _upload(self, name: str, document: Any, *, overwrite: bool) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        from shared.storage.connection import storage_errors

        content = ContentSettings(content_type="application/json")
        with storage_errors(f"writing report {self.location(name)}"):
            try:
                self._container.upload_blob(name, _encode(document), overwrite=overwrite,
                                            content_settings=content)
            except ResourceNotFoundError:  # the container: created by infra, or not yet
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._container.upload_blob(name, _encode(document), overwrite=overwrite,
                                            content_settings=content)


class DirectoryReports:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*_check_name(name).split("/"))

    def location(self, name: str) -> str:
        return str(self._path(name))

    def get(self, name: str) -> dict | None:
        try:
            return json.loads(self._path(name).read_bytes())
        except FileNotFoundError:
            return None

    def create(self, name: str, document: Any) -> bool:
        path = self._path(name)
        temp = self._write_temp(path, document)
        try:
            os.link(temp, path)  # atomic create-only: fails if the name is taken
        except FileExistsError:
            return False
        finally:
            temp.unlink()
        return True

    def put(self, name: str, document: Any) -> None:
        path = self._path(name)
        os.replace(self._write_temp(path, document), path)

    @staticmethod
    def _write_temp(path: Path, document: Any) -> Path:
        private_dir(path.parent)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "wb") as handle:
            handle.write(_encode(document))
        return Path(temp)


def open_reports(settings: Settings) -> ReportStore:
    """Blob reports when the event storage is configured, else files in the state directory."""
    from shared.storage.connection import configured

    if configured(settings):
        return BlobReports(settings)
    return DirectoryReports(settings.state_dir / "reports")
