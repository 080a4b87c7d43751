"""A fake GlobalSign Atlas (HVCA API v2) over real mutual TLS, with fault injection.

Follows ``reference/globalsign.md`` §9. A test CA (``devpki``) issues the server's
certificate and the accounts' client certificates::

    with FakeAtlas() as atlas:
        client = atlas.new_client_certificate("acme")       # devpki.Issued, RSA 2048
        atlas.add_account("0123456789abcdef", "40 hex...", client)
        # atlas.base_url, atlas.ca_path (server trust), atlas.mtls_ca_path (PFX issuer)

Client-certificate modes (``atlas.mtls_mode``):

* ``"tls"`` (default): the handshake requires a certificate from the fake's mTLS CA; a
  missing or foreign one fails it (under TLS 1.3 the client sees that on its first read).
* ``"http"``: a certificate is requested but not required; ``/login`` without one answers
  401 ``{"description":"Unauthorized"}``.
* ``"proxy"``: like ``"http"``, but a front end answers any request whose certificate is
  missing or linked to no account with an nginx-style HTML 400.

In every mode ``/login`` answers 401 "Unauthorized" when the certificate is trusted but not
linked to the API key (a valid GlobalSign certificate of another account).

Faults (consumed in order; ``path`` limits one to a route such as ``"/login"``):
``inject(status, ...)``, ``rate_limit()``, ``busy()``, ``in_progress()``, ``proxy_502()``,
``slow(seconds)``, ``reset_connection()``. ``expire_tokens()`` expires every token issued so
far; ``token_ttl`` sets the life of new ones. ``requests`` records what the clients sent.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from shared.certs.devpki import CLIENT_AUTH, SERVER_AUTH, Issued, issue, new_key
from tests.support.serving import BackgroundServer, FakeHandler, TlsServer

PROBLEM = "application/problem+json;charset=utf-8"
JSON = "application/json;charset=utf-8"


def _nginx_400(reason: str) -> bytes:
    return (f"<html>\r\n<head><title>400 {reason}</title></head>\r\n<body>\r\n<center><h1>"
            f"400 Bad Request</h1></center>\r\n<center>{reason}</center>\r\n<hr><center>nginx"
            "</center>\r\n</body>\r\n</html>\r\n").encode()


BAD_GATEWAY_HTML = (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                    b"Gateway</h1></center><hr><center>nginx</center></body></html>\r\n")

DEFAULT_POLICY = {
    "validity": {"secondsmin": 60, "secondsmax": 7776000, "not_before_negative_skew": 200,
                 "not_before_positive_skew": 200},
    "subject_dn": {
        "common_name": {"presence": "REQUIRED", "format": "^[A-Za-z0-9 .-]+$"},
        "organization": {"presence": "STATIC", "format": "Acme Energy Ltd"},
        "country": {"presence": "FORBIDDEN", "format": ""},
        "organizational_unit": {"static": False, "list": ["^.*$"], "mincount": 0,
                                "maxcount": 3},
    },
    "san": {"dns_names": {"static": False, "list": ["."], "mincount": 0, "maxcount": 5},
            "emails": {"static": False, "list": [], "mincount": 0, "maxcount": 0},
            "ip_addresses": {"static": False, "list": [], "mincount": 0, "maxcount": 0},
            "uris": {"static": False, "list": [], "mincount": 0, "maxcount": 0},
            "other_names": None},
    "extended_key_usages": {"ekus": {"static": True, "list": ["1.3.6.1.5.5.7.3.2"],
                                     "mincount": 1, "maxcount": 1}, "critical": False},
    "custom_extensions": {},
    "signature": {"algorithm": {"presence": "STATIC", "list": ["RSA"]},
                  "hash_algorithm": {"presence": "STATIC", "list": ["SHA-256"]}},
    "public_key": {"key_type": "RSA", "allowed_lengths": [2048, 3072, 4096],
                   "key_format": "PKCS8"},
    "public_key_signature": "FORBIDDEN",
}


@dataclass
class Account:
    api_key: str
    api_secret: str
    certificates: set[str]  # SHA-256 of linked client certificates (DER), hex
    policy: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_POLICY)))
    quota: int = 999881
    issued: int = 118
    revoked: int = 3


@dataclass
class Fault:
    status: int | None = None  # None: answer normally (after the delay)
    path: str | None = None
    times: int = 1
    body: bytes = b""
    content_type: str = PROBLEM
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    content_type: str | None
    authorization: str | None
    client_certificate: str | None  # SHA-256 hex of the presented certificate
    body: bytes


def _fingerprint(der: bytes | None) -> str | None:
    return sha256(der).hexdigest() if der else None


def _opaque_token() -> str:
    # Shaped like the JWE compact tokens the live service returns; clients must not parse it.
    header = base64.urlsafe_b64encode(b'{"alg":"dir","enc":"A128GCM","zip":"DEF"}').rstrip(b"=")
    parts = [secrets.token_urlsafe(n) for n in (12, 96, 16)]
    return f"{header.decode()}..{parts[0]}.{parts[1]}.{parts[2]}"


class FakeAtlas(BackgroundServer):
    """The fake server; also a context manager that starts and stops it."""

    def __init__(self, *, mtls_mode: str = "tls") -> None:
        self.root = issue("Fake GlobalSign Root CA - R3", organization="GlobalSign", ca=True,
                          ekus=None, days=3650, key=new_key("p256"))
        self.issuing_ca = issue("Fake GlobalSign Atlas R3 DV TLS CA 2026 Q1",
                                organization="GlobalSign nv-sa", country="BE",
                                issuer=self.root, ca=True, path_length=0, ekus=None,
                                days=1825, key=new_key("p256"))
        self.mtls_ca = issue("Fake Atlas mTLS Issuing CA", organization="GlobalSign nv-sa",
                             country="BE", issuer=self.root, ca=True, path_length=0,
                             ekus=None, days=1825, key=new_key("p256"))
        self.server_cert = issue("localhost", issuer=self.root, dns_names=("localhost",),
                                 ip_addresses=("127.0.0.1",), ekus=(SERVER_AUTH,),
                                 key=new_key("p256"))
        self._dir = Path(tempfile.mkdtemp(prefix="fake-atlas-"))
        self.ca_path = self._write("ca.pem", self.root.cert_pem())
        self.mtls_ca_path = self._write("mtls-ca.pem",
                                        self.mtls_ca.cert_pem() + self.root.cert_pem())
        server_pem = self._write("server.pem", self.server_cert.key_pem()
                                 + self.server_cert.cert_pem())
        self._contexts = {}
        for mode, verify in (("tls", ssl.CERT_REQUIRED), ("http", ssl.CERT_OPTIONAL),
                             ("proxy", ssl.CERT_OPTIONAL)):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(server_pem)
            context.load_verify_locations(cadata=self.root.cert_pem().decode())
            context.verify_mode = verify
            self._contexts[mode] = context
        self.accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    def _make_server(self) -> _Server:
        return _Server(self)

    def reset(self) -> None:
        """Forget faults, tokens and recorded requests; back to ``tls`` mode and 600 s tokens."""
        with self._lock:
            self.mtls_mode = "tls"
            self.token_ttl = 600.0
            self.faults: list[Fault] = []
            self.tokens: dict[str, tuple[str, float]] = {}
            self.requests: list[Seen] = []
            self.handshake_failures = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v2"

    def env(self) -> dict[str, str]:
        """Settings that point dip-edge at this fake and trust its PKI."""
        return {"ATLAS_BASE_URL": self.base_url, "ATLAS_CA_BUNDLE": str(self.ca_path),
                "PFX_TRUSTED_ISSUERS": str(self.mtls_ca_path)}

    # -- accounts ----------------------------------------------------------------------------

    def new_client_certificate(self, common_name: str, **kwargs) -> Issued:
        """A client certificate from the fake's mTLS CA (RSA 2048 unless ``key=`` is given)."""
        kwargs.setdefault("ekus", (CLIENT_AUTH,))
        kwargs.setdefault("organization", "Acme Energy Ltd")
        return issue(common_name, issuer=self.mtls_ca, **kwargs)

    def add_account(self, api_key: str, api_secret: str, *certificates: Issued,
                    **fields) -> Account:
        account = Account(api_key, api_secret, {_fingerprint(c.cert_der()) for c in certificates},
                          **fields)
        with self._lock:
            self.accounts[api_key] = account
        return account

    def foreign_client_certificate(self, common_name: str = "Not GlobalSign") -> Issued:
        """A client certificate from a CA the fake does not trust (fails the handshake)."""
        other = issue("Some Other CA", ca=True, ekus=None, key=new_key("p256"))
        return issue(common_name, issuer=other, ekus=(CLIENT_AUTH,))

    # -- faults ------------------------------------------------------------------------------

    def inject(self, status: int | None = None, *, path: str | None = None, times: int = 1,
               description: str | None = None, body: bytes | None = None,
               content_type: str = PROBLEM, headers: dict[str, str] | None = None,
               delay: float = 0.0, reset: bool = False) -> None:
        if body is None:
            body = json.dumps({"description": description}).encode() if description else b""
        with self._lock:
            self.faults.append(Fault(status, path, times, body, content_type,
                                     dict(headers or {}), delay, reset))

    def rate_limit(self, times: int = 1, *, path: str | None = None,
                   retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self.inject(429, path=path, times=times, description="Rate Limit Reached",
                    headers=headers)

    def busy(self, times: int = 1, *, path: str | None = None,
             retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        body = json.dumps({"description": "Service busy, please retry later",
                           "id": secrets.token_urlsafe(20)}).encode()
        self.inject(503, path=path, times=times, body=body, headers=headers)

    def in_progress(self, times: int = 1, *, path: str | None = None) -> None:
        self.inject(202, path=path, times=times, description="Operation in progress",
                    content_type=JSON)

    def proxy_502(self, times: int = 1, *, path: str | None = None) -> None:
        self.inject(502, path=path, times=times, body=BAD_GATEWAY_HTML,
                    content_type="text/html")

    def slow(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        self.inject(None, path=path, times=times, delay=seconds)

    def reset_connection(self, times: int = 1, *, path: str | None = None) -> None:
        self.inject(None, path=path, times=times, reset=True)

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens = {t: (key, float("-inf")) for t, (key, _) in self.tokens.items()}

    def wait_for_handshake_failures(self, count: int = 1, timeout: float = 2.0) -> int:
        """The failure count once it reaches ``count`` (the server thread may lag the client)."""
        deadline = time.monotonic() + timeout
        while self.handshake_failures < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.handshake_failures

    def logins(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path == "/login")

    # -- serving -----------------------------------------------------------------------------

    def _write(self, name: str, data: bytes) -> Path:
        path = self._dir / name
        path.write_bytes(data)
        return path

    def _context(self) -> ssl.SSLContext:
        return self._contexts[self.mtls_mode]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.path in (None, path):
                    fault.times -= 1
                    return fault
        return None

    def handle(self, handler: _Handler, method: str) -> None:
        raw_path = handler.path.split("?", 1)[0]
        length = handler.headers.get("Content-Length")
        body = handler.rfile.read(int(length)) if length and length.isdigit() else b""
        peer = _fingerprint(handler.connection.getpeercert(binary_form=True))
        path = "/" + raw_path.strip("/")
        if path == "/v2" or path.startswith("/v2/"):
            path = path[3:] or "/"
        else:
            path = None
        with self._lock:
            self.requests.append(Seen(method, path or raw_path,
                                      handler.headers.get("Content-Type"),
                                      handler.headers.get("Authorization"), peer, body))
        fault = self._take_fault(path or raw_path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                handler.reset()
                return
            if fault.status is not None:
                handler.respond(fault.status, fault.body, fault.content_type, fault.headers)
                return
        if self.mtls_mode == "proxy" and peer is None:
            handler.respond(400, _nginx_400("No required SSL certificate was sent"), "text/html")
            return
        if self.mtls_mode == "proxy" and not self._linked_anywhere(peer):
            handler.respond(400, _nginx_400("The SSL certificate error"), "text/html")
            return
        status, document = self._route(method, path, handler, body, peer)
        content_type = JSON if status < 400 else PROBLEM
        handler.respond(status, json.dumps(document).encode(), content_type)

    def _route(self, method: str, path: str | None, handler: _Handler, body: bytes,
               peer: str | None) -> tuple[int, object]:
        routes = {"/login": "POST", "/validationpolicy": "GET", "/quotas/issuance": "GET",
                  "/counters/certificates/issued": "GET",
                  "/counters/certificates/revoked": "GET", "/trustchain": "GET"}
        if path not in routes:
            return 404, {"description": "Not Found"}
        if method != routes[path]:
            return 405, {"description": "Method Not Allowed"}
        if path == "/login":
            return self._login(handler, body, peer)
        account, problem = self._authorise(handler.headers.get("Authorization"))
        if account is None:
            return 401, {"description": problem}
        if path == "/validationpolicy":
            return 200, account.policy
        if path == "/quotas/issuance":
            return 200, {"value": account.quota}
        if path == "/counters/certificates/issued":
            return 200, {"value": account.issued}
        if path == "/counters/certificates/revoked":
            return 200, {"value": account.revoked}
        return 200, [self.issuing_ca.cert_pem().decode(), self.root.cert_pem().decode()]

    def _login(self, handler: _Handler, body: bytes, peer: str | None) -> tuple[int, object]:
        if not handler.headers.get("Content-Length"):
            return 411, {"description": "Content-Length required"}
        media, _, params = (handler.headers.get("Content-Type") or "").partition(";")
        charset = params.replace(" ", "").lower()
        if media.strip().lower() != "application/json" or charset != "charset=utf-8":
            return 415, {"description": "Bad Content-Type"}
        try:
            document = json.loads(body)
        except ValueError:
            return 400, {"description": "Bad Request"}
        if not isinstance(document, dict) or not all(
                isinstance(document.get(k), str) for k in ("api_key", "api_secret")):
            return 422, {"description": "Invalid login request"}
        account = self.accounts.get(document["api_key"])
        if (account is None or peer not in account.certificates
                or not secrets.compare_digest(account.api_secret.encode(),
                                              document["api_secret"].encode())):
            return 401, {"description": "Unauthorized"}
        token = _opaque_token()
        with self._lock:
            self.tokens[token] = (account.api_key, time.monotonic())
        return 200, {"access_token": token}

    def _linked_anywhere(self, peer: str | None) -> bool:
        with self._lock:
            return any(peer in a.certificates for a in self.accounts.values())

    def _authorise(self, header: str | None) -> tuple[Account | None, str]:
        scheme, _, token = (header or "").partition(" ")
        if scheme != "Bearer" or not token:
            return None, "Unauthorized"
        with self._lock:
            entry = self.tokens.get(token)
        if entry is None:
            return None, "Signature is invalid"
        api_key, issued = entry
        if time.monotonic() - issued >= self.token_ttl:
            return None, "Token is expired"
        return self.accounts[api_key], ""


class _Handler(FakeHandler):
    server: _Server

    def respond(self, status: int, body: bytes, content_type: str,
                headers: dict[str, str] | None = None) -> None:
        self.write_response(status, body, content_type, headers)

    def reset(self) -> None:
        """Drop the connection with a TCP reset, as a failing front end might."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(TlsServer):
    fake: FakeAtlas

    def __init__(self, fake: FakeAtlas) -> None:
        super().__init__(fake, _Handler)

    def tls_context(self) -> ssl.SSLContext:
        return self.fake._context()

    def handshake_failed(self) -> None:
        with self.fake._lock:
            self.fake.handshake_failures += 1

