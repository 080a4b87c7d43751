"""Owner-only files: the state directory is 0700 and every file in it 0600, whatever the
umask (a umask only removes bits, so modes are set explicitly after creating)."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """``path`` and every missing parent created 0700; ``path`` itself tightened to 0700."""
    directory = Path(path)
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            candidate.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(candidate, DIR_MODE)
    os.chmod(directory, DIR_MODE)
    return directory


def private_file(path: Path | str) -> Path:
    """``path`` existing (empty if new) with mode 0600, e.g. before SQLite opens it (its
    journal files then take the database file's mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(path)


def write_private(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` (0600), through a temporary file and a rename."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
