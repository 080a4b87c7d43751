"""A fake Azure Key Vault (secrets REST API) over HTTPS, driven by the real ``SecretClient``.

Follows ``reference/azure.md`` §4 and Appendix A: the 401 bearer challenge, SecretBundle
JSON, versions, ``PATCH`` of a version's properties, and an App Service managed-identity
endpoint (``/msi/token``) so the production ``DefaultAzureCredential`` works against it::

    with FakeKeyVault() as vault:
        store = vault.store()                 # KeyVaultSecretStore with a fake credential
        env = vault.env()                     # settings + IDENTITY_ENDPOINT/HEADER + CA bundle
        vault.down = True                     # every request answers 503
        vault.fail_writes_after(2)            # the third and later PUTs answer 503
        vault.deny("setSecret")               # 403 ForbiddenByRbac for that data action
        vault.throttle(2, retry_after="1")    # the next two requests answer 429 Throttled

Key Vault's permanent answers come from its state, with the bodies real vaults send
(``reference/azure.md`` §8): a PUT to a name deleted but recoverable is 409
``ObjectIsDeletedButRecoverable``; a GET of a disabled version is 403 ``SecretDisabled``;
a value over 25,600 characters is 400 ``BadParameter``. Responses leave out ``tags`` when
none are set, as the service does.

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
CALLER_OID = "3f2b9c1e-5d4a-4e8b-9a61-0c7d2e8f4b15"  # the object id a 403 names
MAX_VALUE_CHARS = 25_600


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
            self._recoverable: dict[str, list[dict]] = {}  # a deleted name's versions
            self.requests: list[tuple[str, str]] = []
            self.tokens_seen: set[str] = set()
            self.down = False
            self._writes_left: int | None = None
            self.denied: set[str] = set()
            self._throttled = 0
            self._throttle_retry_after: str | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def fail_writes_after(self, successful: int | None) -> None:
        """Let ``successful`` more PUTs through, then answer every PUT with 503 (None: heal)."""
        with self._lock:
            self._writes_left = successful

    def deny(self, *data_actions: str) -> None:
        """Answer requests needing these data actions (``getSecret``, ``setSecret``,
        ``update``, ``readMetadata``, ``delete``) as RBAC does without a role that grants them."""
        with self._lock:
            self.denied |= set(data_actions)

    def throttle(self, count: int, *, retry_after: str | None = "1") -> None:
        """Answer the next ``count`` vault requests 429 Throttled (with that Retry-After)."""
        with self._lock:
            self._throttled, self._throttle_retry_after = count, retry_after

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
        segments = [p for p in parts.path.split("/") if p]
        with self._lock:
            self.tokens_seen.add(token)
            if self._throttled > 0:
                self._throttled -= 1
                headers = ({"Retry-After": self._throttle_retry_after}
                           if self._throttle_retry_after is not None else {})
                return handler.send(429, {"error": {
                    "code": "Throttled",
                    "message": "Request was not processed because too many requests were "
                               "received. Reason: VaultRequestTypeLimitReached"}}, headers)
            action = _data_action(method, segments)
            if action in self.denied:
                return handler.send(403, self._forbidden_by_rbac(action, segments))
            status, document = self._route(method, segments, body)
        handler.send(status, document)

    def _forbidden_by_rbac(self, action: str, segments: list[str]) -> dict:
        """The body Key Vault sends when no role assignment grants the data action."""
        verb = "action" if action in {"getSecret", "setSecret", "update", "readMetadata"} \
            else ""
        resource = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/"
                    "rg-dip-edge/providers/microsoft.keyvault/vaults/kv-dip-edge/"
                    + "/".join(segments))
        message = (
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, "
            "deny assignments or role definitions were changed recently, please observe "
            "propagation time.\r\n"
            f"Caller: appid=8d1f4a2c-0b6e-4c7a-9f3d-2e5b7a9c1d04;oid={CALLER_OID};"
            f"iss=https://sts.windows.net/{TENANT}/\r\n"
            f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}{'/' + verb if verb else ''}'"
            f"\r\nResource: '{resource.lower()}'\r\nAssignment: (not found)\r\n"
            "DenyAssignmentId: null\r\nDecisionReason: null \r\n"
            "Vault: kv-dip-edge;location=uksouth\r\n")
        return {"error": {"code": "Forbidden", "message": message,
                          "innererror": {"code": "ForbiddenByRbac"}}}

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
                if name in self.deleted:
                    return 409, {"error": {
                        "code": "Conflict",
                        "message": f"Secret {name} is currently in a deleted but recoverable "
                                   "state, and its name cannot be reused; in this state, the "
                                   "secret can only be recovered or purged.",
                        "innererror": {"code": "ObjectIsDeletedButRecoverable"}}}
                if len(json.loads(body or b"{}").get("value") or "") > MAX_VALUE_CHARS:
                    return 400, {"error": {
                        "code": "BadParameter",
                        "message": "Secret is beyond the maximum permitted length of "
                                   f"{MAX_VALUE_CHARS} characters"}}
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
                return _readable(versions[-1])
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
                    bundle["attributes"].update({k: v for k, v in
                                                 (update.get("attributes") or {}).items()
                                                 if v is not None})
                    bundle["attributes"]["updated"] = now
                    return 200, _item(bundle)  # the service answers without the value
                return _readable(bundle)
            if method == "DELETE" and not rest:
                deleted = {**versions[-1], "recoveryId": f"{self.url}/deletedsecrets/{name}",
                           "deletedDate": now, "scheduledPurgeDate": now + 90 * 86400}
                self.deleted[name] = deleted
                self._recoverable[name] = self.secrets.pop(name)
                return 200, deleted
        if segments[:1] == ["deletedsecrets"] and segments[2:] == ["recover"] \
                and method == "POST" and segments[1] in self.deleted:
            recovered = self.deleted.pop(segments[1])
            bundle = {k: v for k, v in recovered.items()
                      if k not in {"recoveryId", "deletedDate", "scheduledPurgeDate"}}
            self.secrets[segments[1]] = self._recoverable.pop(segments[1], [bundle])
            return 200, _item(bundle)
        if len(segments) == 2 and segments[0] == "deletedsecrets":
            if segments[1] not in self.deleted:
                return 404, _not_found("deleted secret not found")
            if method == "DELETE":
                del self.deleted[segments[1]]
                self._recoverable.pop(segments[1], None)
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
                  "attributes": attributes}
        if request.get("tags"):
            bundle["tags"] = request["tags"]
        if request.get("contentType") is not None:
            bundle["contentType"] = request["contentType"]
        self.secrets.setdefault(name, []).append(bundle)
        return 200, bundle


def _readable(bundle: dict) -> tuple[int, dict]:
    if bundle["attributes"].get("enabled") is False:
        return 403, {"error": {"code": "Forbidden",
                               "message": "Operation get is not allowed on a disabled secret.",
                               "innererror": {"code": "SecretDisabled"}}}
    return 200, bundle


def _data_action(method: str, segments: list[str]) -> str:
    """The RBAC data action a request needs (Microsoft.KeyVault/vaults/secrets/...)."""
    if segments[:1] == ["deletedsecrets"]:
        return "purge" if method == "DELETE" else "recover" if method == "POST" \
            else "readMetadata"
    if method == "PUT":
        return "setSecret"
    if method == "PATCH":
        return "update"
    if method == "DELETE":
        return "delete"
    if len(segments) <= 1 or segments[2:] == ["versions"]:
        return "readMetadata"
    return "getSecret"


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
