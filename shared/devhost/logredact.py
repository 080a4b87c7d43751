"""A logging filter for the local host: no query string and no known secret in any line.

A query string can carry the function key (``?code=``) or anything a caller put there, so
every URL's query in a log line becomes ``?[redacted]``, whichever library logged it; the
given secrets (the function key) are replaced wherever they appear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_QUERY = re.compile(r"""(?P<target>(?:https?://|/)[^\s?#"'<>]*)\?[^\s#"'<>]*""")
REDACTED = "[redacted]"


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = redact(record.getMessage(), self.secrets)
        record.msg, record.args = text, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = _QUERY.sub(lambda m: f"{m['target']}?{REDACTED}", text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def install(secrets: Iterable[str] = ()) -> None:
    """On every handler of the root logger (records of every logger pass through them)."""
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
