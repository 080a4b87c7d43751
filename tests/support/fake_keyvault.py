"""A fake Azure Key Vault (secrets REST API) over HTTPS, driven by the real ``SecretClient``.

Follows ``reference/azure.md`` §4 and Appendix A: the 401 bearer challenge, SecretBundle
JSON, versions, ``PATCH`` of a version's properties, and an App Service managed-identity
endpoint (``/msi/token``) so the production ``DefaultAzureCredential`` works against it::

    with FakeKeyVault() as vault:
        store = vault.store()                 # KeyVaultSecretStore with a fake credential
        env = vault.env()                     # settings + IDENTITY_ENDPOINT/HEADER + CA bundle
        vault.down = True                     # every request answers 503
        vault.fail_writes_after(2)            # the third and later PUTs answer 503

``secrets`` holds name → list of bundles (oldest first); ``requests`` records
``(method, path)`` of what the clients sent.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shared.certs.devpki import SERVER_AUTH, issue, new_key
from tests.support.serving import BackgroundServer, FakeHandler, TlsServer

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
RESOURCE = "https://vault.azure.net"
IDENTITY_HEADER = "test-identity-header"


class FakeCredential:
    """A ``TokenCredential`` that records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None, bool]] = []

    def get_token(self, *scopes: str, claims=None, tenant_id=None, enable_cae=False, **kw):
        from azure.core.credentials import AccessToken

        self.calls.append((scopes, tenant_id, enable_cae))
        return AccessToken("fake-token", int(time.time()) + 3600)


class FakeKeyVault(BackgroundServer):
    def __init__(self) -> None:
        self.root = issue("Fake Key Vault Test CA", ca=True, ekus=None, key=new_key("p256"))
        server = issue("localhost", issuer=self.root, dns_names=("localhost",),
                       ip_addresses=("127.0.0.1",), ekus=(SERVER_AUTH,), key=new_key("p256"))
        folder = Path(tempfile.mkdtemp(prefix="fake-kv-"))
        self.ca_path = folder / "ca.pem"
        self.ca_path.write_bytes(self.root.cert_pem())
        pair = folder / "server.pem"
        pair.write_bytes(server.key_pem() + server.cert_pem())
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(pair)
        self._lock = threading.Lock()
        self.reset()

    def _make_server(self) -> _Server:
        return _Server(self)

    def reset(self) -> None:
        """Empty the vault, clear faults and the request log."""
        with self._lock:
            self.secrets: dict[str, list[dict]] = {}
            self.deleted: dict[str, dict] = {}
            self.requests: list[tuple[str, str]] = []
            self.tokens_seen: set[str] = set()
            self.down = False
            self._writes_left: int | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def fail_writes_after(self, successful: int | None) -> None:
        """Let ``successful`` more PUTs through, then answer every PUT with 503 (None: heal)."""
        with self._lock:
            self._writes_left = successful

    def store(self, *, max_retries: int = 0, credential=None):
        """A ``KeyVaultSecretStore`` (the real SecretClient) pointed at this fake."""
        from shared.vault.keyvault import KeyVaultSecretStore

        return KeyVaultSecretStore(self.url, credential or FakeCredential(),
                                   max_retries=max_retries, connection_verify=str(self.ca_path))

    def env(self) -> dict[str, str]:
        """Settings for ``open_store``: Key Vault here, reached with the production
        ``DefaultAzureCredential`` through this fake's managed-identity endpoint."""
        return {"SECRET_STORE": "keyvault", "KEY_VAULT_URL": self.url,
                "KEY_VAULT_MAX_RETRIES": "0",
                "IDENTITY_ENDPOINT": f"{self.url}/msi/token", "IDENTITY_HEADER": IDENTITY_HEADER,
                "REQUESTS_CA_BUNDLE": str(self.ca_path)}

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return [b["id"].rsplit("/", 1)[1] for b in self.secrets.get(name, [])]

    # -- serving -----------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, parts.path))
        if parts.path.rstrip("/") == "/msi/token":
            return self._msi(handler, query)
        if self.down:
            return handler.send(503, {"error": {"code": "ServiceUnavailable",
                                                "message": "The service is unavailable."}})
        if "api-version" not in query:
            return handler.send(400, {"error": {"code": "BadParameter",
                                                "message": "api-version missing"}})
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not token:
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                         f'resource="{RESOURCE}"')
            return handler.send(401, {"error": {
                "code": "Unauthorized",
                "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {"WWW-Authenticate": challenge})
        with self._lock:
            self.tokens_seen.add(token)
            status, document = self._route(method, [p for p in parts.path.split("/") if p],
                                           body)
        handler.send(status, document)

    def _msi(self, handler: _Handler, query: dict[str, list[str]]) -> None:
        if handler.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            return handler.send(401, {"error": "bad identity header"})
        resource = query.get("resource", [RESOURCE])[0]
        handler.send(200, {"access_token": f"fake-mi-token.{resource}",
                           "expires_on": str(int(time.time()) + 3600), "resource": resource,
                           "token_type": "Bearer"})

    def _route(self, method: str, segments: list[str], body: bytes) -> tuple[int, object]:
        now = int(time.time())
        if segments == ["secrets"] and method == "GET":
            return 200, {"value": [_item(v[-1]) for v in self.secrets.values()],
                         "nextLink": None}
        if len(segments) >= 2 and segments[0] == "secrets":
            name, rest = segments[1], segments[2:]
            if method == "PUT" and not rest:
                if self._writes_left is not None:
                    if self._writes_left <= 0:
                        return 503, {"error": {"code": "ServiceUnavailable",
                                               "message": "The service is unavailable."}}
                    self._writes_left -= 1
                return self._put(name, json.loads(body or b"{}"), now)
            versions = self.secrets.get(name)
            if not versions:
                return 404, _not_found(f"A secret with (name/id) {name} was not found in "
                                       "this key vault.")
            if method == "GET" and not rest:
                return 200, versions[-1]
            if method == "GET" and rest == ["versions"]:
                return 200, {"value": [_item(b) for b in versions], "nextLink": None}
            if len(rest) == 1 and method in {"GET", "PATCH"}:
                bundle = next((b for b in versions if b["id"].endswith("/" + rest[0])), None)
                if bundle is None:
                    return 404, _not_found("version not found")
                if method == "PATCH":
                    update = json.loads(body or b"{}")
                    if update.get("tags") is not None:
                        bundle["tags"] = update["tags"]
                    if update.get("contentType") is not None:
                        bundle["contentType"] = update["contentType"]
                    bundle["attributes"]["updated"] = now
                return 200, bundle
            if method == "DELETE" and not rest:
                deleted = {**versions[-1], "recoveryId": f"{self.url}/deletedsecrets/{name}",
                           "deletedDate": now, "scheduledPurgeDate": now + 90 * 86400}
                self.deleted[name] = deleted
                del self.secrets[name]
                return 200, deleted
        if len(segments) == 2 and segments[0] == "deletedsecrets":
            if segments[1] not in self.deleted:
                return 404, _not_found("deleted secret not found")
            if method == "DELETE":
                del self.deleted[segments[1]]
                return 204, None
            return 200, self.deleted[segments[1]]
        return 404, {"error": {"code": "NotFound", "message": f"{method} /{'/'.join(segments)}"}}

    def _put(self, name: str, request: dict, now: int) -> tuple[int, object]:
        attributes = {"enabled": True, "created": now, "updated": now,
                      "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
        attributes.update({k: v for k, v in (request.get("attributes") or {}).items()
                           if v is not None})
        bundle = {"value": request.get("value", ""),
                  "id": f"{self.url}/secrets/{name}/{uuid.uuid4().hex}",
                  "attributes": attributes, "tags": request.get("tags") or {}}
        if request.get("contentType") is not None:
            bundle["contentType"] = request["contentType"]
        self.secrets.setdefault(name, []).append(bundle)
        return 200, bundle


def _item(bundle: dict) -> dict:
    return {k: v for k, v in bundle.items() if k != "value"}


def _not_found(message: str) -> dict:
    return {"error": {"code": "SecretNotFound", "message": message}}


class _Handler(FakeHandler):
    server: _Server

    def send(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        body = b"" if document is None else json.dumps(document).encode()
        self.write_response(status, body, "application/json; charset=utf-8", headers)


class _Server(TlsServer):
    fake: FakeKeyVault

    def __init__(self, fake: FakeKeyVault) -> None:
        super().__init__(fake, _Handler)

    def tls_context(self) -> ssl.SSLContext:
        return self.fake._context
