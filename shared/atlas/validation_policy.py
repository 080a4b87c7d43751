"""``GET /validationpolicy``: what certificates the account may order, summarised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.atlas.client import AtlasError
from shared.certs.facts import eku_name as _eku_name
from shared.problems import GS_UNEXPECTED_RESPONSE

if TYPE_CHECKING:
    from shared.atlas.client import AtlasClient


@dataclass(frozen=True)
class ValidationPolicy:
    key_type: str | None
    key_lengths: tuple[int, ...]
    extended_key_usages: tuple[str, ...]  # as the policy lists them (OIDs or patterns)
    validity_min_seconds: int | None
    validity_max_seconds: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyType": self.key_type,
            "keyLengths": list(self.key_lengths),
            "extendedKeyUsages": [
                {"oid": e, "name": _eku_name(e)} for e in self.extended_key_usages
            ],
            "validity": {"minSeconds": self.validity_min_seconds,
                         "maxSeconds": self.validity_max_seconds},
        }


def fetch_validation_policy(client: AtlasClient) -> ValidationPolicy:
    document = client.get_json("/validationpolicy")
    if not isinstance(document, Mapping):
        raise AtlasError(GS_UNEXPECTED_RESPONSE(
            "GlobalSign's /validationpolicy answer is not a JSON object."))
    return summarise(document)


def summarise(document: Mapping[str, Any]) -> ValidationPolicy:
    """Read the parts of a validation policy an admin asks about; tolerate missing parts."""
    public_key = _mapping(document.get("public_key"))
    ekus = _mapping(_mapping(document.get("extended_key_usages")).get("ekus"))
    validity = _mapping(document.get("validity"))
    lengths = public_key.get("allowed_lengths")
    listed = ekus.get("list")
    return ValidationPolicy(
        key_type=_str(public_key.get("key_type")),
        key_lengths=tuple(n for n in lengths if isinstance(n, int))
        if isinstance(lengths, list) else (),
        extended_key_usages=tuple(e for e in listed if isinstance(e, str))
        if isinstance(listed, list) else (),
        validity_min_seconds=_int(validity.get("secondsmin")),
        validity_max_seconds=_int(validity.get("secondsmax")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
