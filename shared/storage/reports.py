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
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from shared.private import private_dir
from shared.problems import DipEdgeError
from shared.settings import Settings

logger = logging.getLogger("dip_edge.reports")

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

    def recent(self, prefix: str, limit: int) -> list[str]:
        """Names under ``prefix`` (e.g. ``keyvault/``), the most recently written first."""


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

    def recent(self, prefix: str, limit: int) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        from shared.storage.connection import storage_errors

        with storage_errors(f"listing reports {self.container_name}/{prefix}"):
            try:
                blobs = [(b.last_modified, b.name)
                         for b in self._container.list_blobs(name_starts_with=prefix)]
            except ResourceNotFoundError:  # no container yet: no report yet
                return []
        return [name for _, name in sorted(blobs, reverse=True)[:limit]]

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

    def recent(self, prefix: str, limit: int) -> list[str]:
        found = []
        for path in self.root.glob(f"{prefix}**/*.json"):
            if path.name.startswith(".tmp-"):
                continue
            try:
                found.append((path.stat().st_mtime_ns, path.relative_to(self.root).as_posix()))
            except OSError:  # removed since listed
                continue
        return [name for _, name in sorted(found, reverse=True)[:limit]]

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


# The reports of event-driven validation (shared.events.secret_events and .uploads).
VALIDATION_PREFIXES = ("keyvault/", "uploads/")


def latest_validations(settings: Settings, limit: int = 10) -> list[dict] | None:
    """Summaries of the latest event validation reports, newest first; None when the store
    cannot be read (logged), so a page can say so rather than show nothing."""
    try:
        reports = open_reports(settings)
        names = [n for prefix in VALIDATION_PREFIXES for n in reports.recent(prefix, limit)]
        documents = [(n, reports.get(n)) for n in names]
    except DipEdgeError as err:
        logger.warning("the event validation reports could not be read (%s)", err.code)
        return None
    except ValueError:  # a report that is not JSON
        logger.warning("an event validation report is not readable JSON; none shown")
        return None
    summaries = [_summary(n, d) for n, d in documents if isinstance(d, dict)]
    summaries.sort(key=lambda s: str(s["handledAt"] or ""), reverse=True)
    return summaries[:limit]


def _summary(name: str, document: dict) -> dict:
    kind = document.get("kind")
    certificate = document.get("certificate") if isinstance(
        document.get("certificate"), dict) else {}
    return {
        "name": name,
        "kind": kind,
        "outcome": document.get("outcome"),
        "handledAt": document.get("handledAt"),
        "subject": document.get(kind) if isinstance(kind, str) else None,
        "errors": document.get("errors") or [],
        "warnings": document.get("warnings") or [],
        "certificate": {k: certificate.get(k) for k in ("subject", "thumbprintSha1",
                                                        "notAfter")} if certificate else None,
    }
