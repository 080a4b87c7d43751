"""Search captured output for secrets that must never appear."""

from __future__ import annotations

import base64


def forms(secret: str | bytes) -> list[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    out = {raw.decode("latin-1"), base64.b64encode(raw).decode()}
    return [s for s in out if len(s) >= 4]


def assert_no_secrets(text: str, *secrets: str | bytes) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, "a secret value appears in captured output"
