"""Fetching a missing issuer certificate from a leaf's AIA caIssuers URL — carefully.

``X-ARR-ClientCert`` and ``X-DIP-Signature-Certificate`` carry only the leaf, and
GlobalSign's Atlas issuing CAs rotate every quarter, so pinning one intermediate breaks
four times a year. An :class:`AiaFetcher` fetches the issuer the leaf names, but only
from allow-listed hosts (the URL is chosen by whoever made the certificate: never fetch
from a host an attacker picks), over http(s), with a short timeout, a size limit, no
redirects and at most :data:`MAX_URLS` URLs per certificate; results (and failures,
briefly) are cached per URL::

    fetcher = AiaFetcher(("secure.globalsign.com",))
    result = fetcher.fetch_issuers(leaf)      # .certificates, .complete, .notes
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID

from shared.certs.verdict import TtlCache

log = logging.getLogger("dip_edge.certs")

TIMEOUT_SECONDS = 3.0
MAX_BYTES = 64 * 1024
CACHE_SIZE = 64
CACHE_TTL_SECONDS = 6 * 3600.0
FAILURE_TTL_SECONDS = 60.0  # a failed fetch is retried after a minute, not per request
SCHEMES = ("http", "https")  # caIssuers are usually plain http; the signature protects them
MAX_URLS = 3  # the leaf is not verified yet: its author picks how many fetches we make


@dataclass(frozen=True)
class AiaResult:
    certificates: tuple[x509.Certificate, ...]
    complete: bool  # False when a fetch failed (a transient answer: don't cache the verdict)
    notes: tuple[str, ...] = ()


def ca_issuer_urls(certificate: x509.Certificate) -> list[str]:
    """The caIssuers URIs of a certificate's AIA extension, in order."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [d.access_location.value for d in aia.value
            if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """DER or PEM certificate(s), or a PKCS#7 bundle (.p7c); empty if none."""
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            if b"PKCS7" in data[:64]:
                return pkcs7.load_pem_pkcs7_certificates(data)
            return x509.load_pem_x509_certificates(data)
        except (ValueError, x509.InvalidVersion):
            return []
    for load in (lambda d: [x509.load_der_x509_certificate(d)],
                 pkcs7.load_der_pkcs7_certificates):
        try:
            return load(data)
        except (ValueError, x509.InvalidVersion):
            continue
    return []


class AiaFetcher:
    """Fetches issuers from allow-listed AIA URLs; thread-safe, with a bounded cache."""

    def __init__(self, allowed_hosts: Iterable[str], *, timeout: float = TIMEOUT_SECONDS,
                 max_bytes: int = MAX_BYTES) -> None:
        self.allowed_hosts = frozenset(h.strip().lower().rstrip(".")
                                       for h in allowed_hosts if h.strip())
        self.timeout = timeout
        self.max_bytes = max_bytes
        # url -> (certificates, error), kept CACHE_TTL_SECONDS (a failure FAILURE_TTL_SECONDS)
        self._cache = TtlCache[str, tuple[tuple[x509.Certificate, ...], str]](CACHE_SIZE)

    def allowed(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allow-listed host (exact match, any port)."""
        # urlsplit silently drops tabs and newlines that httpx refuses (InvalidURL).
        if not url.isascii() or not url.isprintable() or " " in url:
            return False
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return False
        return parts.scheme in SCHEMES and host in self.allowed_hosts and not parts.username

    def fetch_issuers(self, certificate: x509.Certificate) -> AiaResult:
        """Certificates named by ``certificate``'s caIssuers URLs that could be its issuer."""
        found: list[x509.Certificate] = []
        notes: list[str] = []
        complete = True
        urls = ca_issuer_urls(certificate)
        if len(urls) > MAX_URLS:
            notes.append(f"{len(urls) - MAX_URLS} further caIssuers URLs ignored")
        for url in urls[:MAX_URLS]:
            if not self.allowed(url):
                notes.append(f"AIA URL not allowed (not http(s) on a host in "
                             f"AIA_ALLOWED_HOSTS): {url!r}")
                log.warning("refused to fetch AIA caIssuers from %r: not allow-listed", url)
                continue
            certs, error = self._get(url)
            if error:
                notes.append(f"AIA fetch from {url} failed: {error}")
                complete = False
            found += [c for c in certs if c.subject == certificate.issuer and c not in found]
        return AiaResult(tuple(found), complete, tuple(notes))

    def _get(self, url: str) -> tuple[tuple[x509.Certificate, ...], str]:
        now = time.monotonic()
        entry = self._cache.get(url, now)
        if entry is not None:
            return entry[1]
        certs, error = self._download(url)
        ttl = FAILURE_TTL_SECONDS if error else CACHE_TTL_SECONDS
        self._cache.put(url, now + ttl, (certs, error))
        return certs, error

    def _download(self, url: str) -> tuple[tuple[x509.Certificate, ...], str]:
        import httpx  # lazily: only a cache miss on a missing issuer pays for it

        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client, \
                    client.stream("GET", url, headers={"Accept": "*/*"}) as response:
                if response.status_code != 200:
                    return (), f"HTTP {response.status_code}"
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    return (), f"larger than {self.max_bytes} bytes"
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        return (), f"larger than {self.max_bytes} bytes"
        except httpx.HTTPError as exc:
            return (), type(exc).__name__
        certs = tuple(parse_certificates(bytes(body)))
        if not certs:
            return (), "not a DER, PEM or PKCS#7 certificate"
        return certs, ""
