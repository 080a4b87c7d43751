"""``GET /trustchain``: the account's issuing CA and root, as PEM strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509

from shared.atlas.client import AtlasError
from shared.problems import GS_UNEXPECTED_RESPONSE

if TYPE_CHECKING:
    from shared.atlas.client import AtlasClient


def fetch_trust_chain(client: AtlasClient) -> tuple[x509.Certificate, ...]:
    """The chain as GlobalSign lists it: the issuing CA first, the root last."""
    document = client.get_json("/trustchain")
    if not isinstance(document, list) or not all(isinstance(p, str) for p in document):
        raise AtlasError(GS_UNEXPECTED_RESPONSE(
            "GlobalSign's /trustchain answer is not a list of PEM strings."))
    try:
        return tuple(x509.load_pem_x509_certificate(p.encode()) for p in document)
    except ValueError:
        raise AtlasError(GS_UNEXPECTED_RESPONSE(
            "GlobalSign's /trustchain answer holds something that is not a PEM "
            "certificate.")) from None
