"""``GET /quotas/issuance``: how many certificates the account may still order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.atlas.client import AtlasError
from shared.problems import GS_UNEXPECTED_RESPONSE

if TYPE_CHECKING:
    from shared.atlas.client import AtlasClient


def fetch_issuance_quota(client: AtlasClient) -> int:
    document = client.get_json("/quotas/issuance")
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise AtlasError(GS_UNEXPECTED_RESPONSE(
            "GlobalSign's /quotas/issuance answer holds no whole-number value."))
    return value
