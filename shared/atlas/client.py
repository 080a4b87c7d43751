"""The Atlas HVCA transport: mutual TLS, login and token reuse, retries, outcome mapping.

Use it as a context manager::

    with AtlasClient(connection, api_key=k, api_secret=s, certificate=c, private_key=pk) as atlas:
        policy = atlas.get_json("/validationpolicy")

Every remote fault raises an :class:`AtlasError` carrying one ``globalsign.*`` finding
(``proof.prove_credentials`` turns them into the proof's findings):

* TLS alerts and resets (in the handshake, or on the first read under TLS 1.3, where a
  server's refusal of the client certificate arrives after the handshake), and non-JSON
  400/401/403 answers from a front end → ``globalsign.mtls_rejected``;
* 401 with a JSON problem from ``/login`` → ``globalsign.invalid_credentials``;
* network errors, timeouts, 429, 202 and 5xx once the retries are spent →
  ``globalsign.unavailable`` (``retry_after`` set when the server said so);
* anything else → ``globalsign.unexpected_response`` with the status and GlobalSign's
  ``description``.

The API secret and the access token are kept out of reprs, logs and error details.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from shared.atlas.tls import client_context
from shared.problems import (
    GS_INVALID_CREDENTIALS,
    GS_MTLS_REJECTED,
    GS_UNAVAILABLE,
    GS_UNEXPECTED_RESPONSE,
    DipEdgeError,
    ProblemType,
)
from shared.settings import Setting, Settings
from shared.telemetry import dependency_failure

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class AtlasError(DipEdgeError):
    """A remote fault of GlobalSign Atlas (a ``globalsign.*`` finding), raised inside
    ``shared/atlas/`` only: ``proof.prove_credentials`` is where it becomes a finding."""


LOGIN_CONTENT_TYPE = "application/json;charset=utf-8"
TOKEN_LIFETIME_SECONDS = 600
# Log in again a minute before the documented 10-minute life ends, as hvclient does.
TOKEN_REUSE_SECONDS = TOKEN_LIFETIME_SECONDS - 60
RETRY_STATUSES = frozenset({202, 429})
FRONT_END_REFUSALS = frozenset({400, 401, 403})
_DESCRIPTION_LIMIT = 200
# Atlas's answers are a few KB; read no more than this of any answer (decompressed).
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from Atlas, read whole (within ``MAX_ANSWER_BYTES``)."""

    status_code: int
    headers: Mapping[str, str]  # httpx.Headers: case-insensitive
    content: bytes


@dataclass(frozen=True)
class AtlasConnection:
    """Where Atlas is and how patiently to talk to it; build once, use for many proofs.

    ``backoff`` is the first wait between tries (doubling each time); every wait, including
    one asked for by ``Retry-After``, is capped at ``timeout``.
    """

    base_url: str
    ca_bundle: str | None
    timeout: float
    max_retries: int
    backoff: float = 1.0

    SETTINGS: ClassVar[tuple[Setting[Any], ...]] = (
        Settings.atlas_base_url, Settings.atlas_ca_bundle, Settings.atlas_timeout_seconds,
        Settings.atlas_max_retries, Settings.atlas_retry_backoff_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> AtlasConnection:
        """``config.invalid`` when an ATLAS_* setting is bad."""
        settings.require(*cls.SETTINGS)
        return cls(base_url=settings.atlas_base_url, ca_bundle=settings.atlas_ca_bundle,
                   timeout=settings.atlas_timeout_seconds,
                   max_retries=settings.atlas_max_retries,
                   backoff=settings.atlas_retry_backoff_seconds)


class AtlasClient:
    """One Atlas account session over mutual TLS with the account's certificate and key.

    Not thread-safe: one client per task (the token is shared by its calls).
    """

    def __init__(self, connection: AtlasConnection, *, api_key: str, api_secret: str,
                 certificate: x509.Certificate, private_key: PrivateKeyTypes,
                 chain: Sequence[x509.Certificate] = (),
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import httpx

        self.connection = connection
        self._credentials = {"api_key": api_key, "api_secret": api_secret}
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_at = 0.0
        self.logins = 0
        context = client_context(certificate, private_key, chain, connection.ca_bundle)
        self._http = httpx.Client(base_url=connection.base_url + "/", verify=context,
                                  timeout=connection.timeout, follow_redirects=False)

    def __repr__(self) -> str:
        return f"AtlasClient(base_url={self.connection.base_url!r})"

    def __enter__(self) -> AtlasClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def login(self) -> None:
        """``POST /login``; keeps the token for later calls."""
        body = json.dumps(self._credentials).encode()
        response = self._send("POST", "login", content=body,
                              headers={"Content-Type": LOGIN_CONTENT_TYPE})
        if response.status_code == 401 and _json(response) is not None:
            raise AtlasError(GS_INVALID_CREDENTIALS(
                "GlobalSign refused the login: the API key or secret is wrong, or not linked "
                "to this PFX's certificate."))
        document = _expect_json(response, "/login")
        token = document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise AtlasError(GS_UNEXPECTED_RESPONSE(
                "GlobalSign's /login answer holds no access token."))
        self._token, self._token_at = token, self._clock()
        self.logins += 1

    def get_json(self, path: str) -> Any:
        """``GET`` a read-only resource (``"/validationpolicy"``) with the bearer token.

        Logs in first when there is no token or it is near the end of its life; on a 401
        logs in once more and repeats the call.
        """
        for attempt in range(2):
            if self._token is None or self._clock() - self._token_at >= TOKEN_REUSE_SECONDS:
                self.login()
            response = self._send("GET", path.lstrip("/"),
                                  headers={"Authorization": f"Bearer {self._token}"})
            if response.status_code == 401 and _json(response) is not None and attempt == 0:
                self._token = None
                continue
            return _expect_json(response, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, **kwargs: Any) -> Answer:
        import httpx

        retry_after: int | None = None
        detail = ""
        status: int | None = None
        for attempt in range(self.connection.max_retries + 1):
            wait = self.connection.backoff * 2 ** attempt
            try:
                response = self._fetch(method, path, **kwargs)
            except httpx.TimeoutException:
                detail = f"GlobalSign did not answer within {self.connection.timeout:g} s."
            except httpx.TransportError as exc:
                failure = _transport_failure(exc)
                if failure.final is not None:
                    raise AtlasError(failure.final(failure.detail)) from None
                detail = failure.detail
            else:
                status = response.status_code
                if status not in RETRY_STATUSES and status < 500:
                    return response
                detail = f"GlobalSign answered {status}{_describe(response)}."
                asked = _retry_after(response)
                if asked is not None:
                    wait, retry_after = asked, max(asked, retry_after or 0)
            if attempt < self.connection.max_retries:
                self._sleep(min(wait, self.connection.timeout))
        dependency_failure("atlas", f"{method} /{path}", GS_UNAVAILABLE.code, status=status)
        raise AtlasError(GS_UNAVAILABLE(
            f"{detail} Gave up after {self.connection.max_retries + 1} tries."),
            retry_after=retry_after)

    def _fetch(self, method: str, path: str, **kwargs: Any) -> Answer:
        import httpx

        with self._http.stream(method, path, **kwargs) as response:
            content = bytearray()
            try:
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > MAX_ANSWER_BYTES:
                        raise AtlasError(GS_UNEXPECTED_RESPONSE(
                            f"GlobalSign answered {response.status_code} to /{path} with a "
                            f"body larger than {MAX_ANSWER_BYTES} bytes."))
            except httpx.DecodingError:
                raise AtlasError(GS_UNEXPECTED_RESPONSE(
                    f"GlobalSign answered {response.status_code} to /{path} with a body "
                    "that does not match its Content-Encoding.")) from None
            return Answer(response.status_code, response.headers, bytes(content))


class TransportFailure(NamedTuple):
    """What a network failure means: its detail, and the entry to report it as at once
    (``final``), or ``None`` when another try may succeed."""

    detail: str
    final: ProblemType | None = None


def _transport_failure(exc: Exception) -> TransportFailure:
    chain = _causes(exc)
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        return TransportFailure("GlobalSign's server certificate could not be verified "
                                f"({verify.verify_message}); check ATLAS_CA_BUNDLE.",
                                GS_UNAVAILABLE)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return TransportFailure("GlobalSign refused the connection.")
    tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if tls is not None or any(isinstance(e, ConnectionResetError | BrokenPipeError)
                              for e in chain) or _is_disconnect(exc):
        reason = tls.reason if tls is not None and tls.reason else type(exc).__name__
        return TransportFailure(
            f"GlobalSign closed the TLS connection ({reason}): the PFX's certificate is "
            "missing, unknown or not accepted for mutual TLS.", GS_MTLS_REJECTED)
    return TransportFailure(f"GlobalSign could not be reached ({type(exc).__name__}).")


def _is_disconnect(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError)


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def _json(response: Answer) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None


def _describe(response: Answer) -> str:
    document = _json(response)
    description = document.get("description") if isinstance(document, dict) else None
    if not isinstance(description, str) or not description:
        return ""
    return f' "{description[:_DESCRIPTION_LIMIT]}"'


def _expect_json(response: Answer, path: str) -> Any:
    status = response.status_code
    document = _json(response)
    if status in FRONT_END_REFUSALS and document is None:
        raise AtlasError(GS_MTLS_REJECTED(
            f"A front end refused the request to {path} with a non-JSON {status}: the PFX's "
            "certificate is missing, unknown or not accepted for mutual TLS."))
    if status != 200 or document is None:
        what = "a body that is not JSON" if status == 200 else str(status)
        raise AtlasError(GS_UNEXPECTED_RESPONSE(
            f"GlobalSign answered {what} to {path}{_describe(response)}."))
    return document


def _retry_after(response: Answer) -> int | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # "²".isdigit() too
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, int((when - datetime.now(UTC)).total_seconds()))
