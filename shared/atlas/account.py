"""One GlobalSign Atlas account's credentials, bundled as GlobalSign's hvclient bundles them
in its ``Config``: API key, API secret, the mTLS certificate, its private key and chain.

Build one with :func:`shared.validation.passed_account`, which gives an account only for a
PFX that passed the checks; the secrets stay out of its repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass(frozen=True)
class Account:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    certificate: x509.Certificate
    private_key: PrivateKeyTypes = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
