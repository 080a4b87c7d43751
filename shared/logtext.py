"""Request-derived text made safe for one log line.

A log line is read by people and parsed by tools; a value an outsider chose (a webhook
channel, a transaction ID, a blob name, a caller's name) must not be able to end the line
early or make it display as something else. :func:`shown` escapes, as ``\\uXXXX`` (``\\xXX``
below U+0100), every character that is not plainly visible text: controls (C0, DEL, C1 —
U+0085 NEL included), format characters (the bidi embeddings, overrides and isolates, zero
widths, U+061C), line and paragraph separators (U+2028, U+2029), surrogates and unassigned
or private code points; and the backslash itself, so an escape in the log can only come
from here. Everything else, letters of every script included, stays as it is.
"""

from __future__ import annotations

import unicodedata

# Categories that are not plainly visible text: Cc control, Cf format (bidi, zero width),
# Cs surrogate, Co private use, Cn unassigned, Zl/Zp line/paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def shown(value: object, limit: int = 300) -> str:
    """``value`` as text fit for one log line, cut to ``limit`` characters first."""
    text = str(value) if value is not None else "-"
    cut = len(text) > limit
    out = []
    for char in text[:limit]:
        if char == "\\":
            out.append("\\\\")
        elif char == " " or unicodedata.category(char) not in _HIDDEN and not char.isspace():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out) + ("…" if cut else "")
