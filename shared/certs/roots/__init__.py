"""Bundled trust anchors (see the fingerprints at the top of each PEM file)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from cryptography import x509


@cache
def globalsign_roots() -> tuple[x509.Certificate, ...]:
    """GlobalSign's public roots, from Mozilla's list by way of certifi."""
    pem = files(__package__).joinpath("globalsign.pem").read_bytes()
    return tuple(x509.load_pem_x509_certificates(pem))
