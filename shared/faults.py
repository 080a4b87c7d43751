"""Where an unexpected exception was raised, for the log line that reports it.

Only the place (file, line, function of the innermost frame) and the exception's type are
logged, never its message or arguments, which may hold a secret or request data.
"""

from __future__ import annotations

import traceback
from pathlib import PurePath

_ROOT = PurePath(__file__).parents[1]


def raised_at(exc: BaseException) -> str:
    """``"shared/x.py:12 in function"`` for the frame that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    frame = frames[-1]
    path = PurePath(frame.filename)
    if "site-packages" in path.parts:
        shown = PurePath(*path.parts[path.parts.index("site-packages") + 1:])
    elif path.is_relative_to(_ROOT):
        shown = path.relative_to(_ROOT)
    else:
        shown = PurePath(path.name)
    return f"{shown.as_posix()}:{frame.lineno} in {frame.name}"
