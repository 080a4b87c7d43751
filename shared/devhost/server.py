"""An HTTPS front door like App Service's, dispatching to the functions of ``function_app.py``.

* TLS like App Service with ``clientCertMode=Required``: the handshake demands a client
  certificate and accepts any (expired, self-signed, any issuer; the client still proves it
  holds the key), and the function gets it in ``X-ARR-ClientCert`` (base64 DER; one sent by
  the caller is dropped). The functions decide (403 ``clientcert.*``). No certificate: the
  handshake fails. ``server_tls_context(..., client_cas=[...])`` verifies in the handshake
  instead. pyOpenSSL, because Python's ``ssl`` cannot require a certificate and accept any
  (it has no verify callback). TLS 1.2+, Mozilla's "intermediate" ciphers; sessions resume
  (cache and tickets) with the certificate first presented.
* Hard to hold down: one thread per connection over a non-blocking socket, every wait
  bounded by a deadline (handshake, request head, body, keep-alive idle, response write);
  a bounded number of connections, and when full, the one longest unfinished (handshake,
  head or body) or idle is closed for the newcomer; a real listen backlog; a body over its
  route's limit is refused from its ``Content-Length`` before it is read.
* Strict HTTP/1.1: h11 parses, and the head is checked first for what h11 tolerates (bare
  CR or LF, obs-fold, ``Transfer-Encoding`` with ``Content-Length``). Every refusal is a
  problem document and closes the connection.
* Requests reach the function through :mod:`shared.devhost.invoke` and its answer is
  written back in one buffer (TCP_NODELAY). Function-level routes need the host's key.
* Logs never carry a query string (``?code=`` is the function key) nor a traceback for a
  client's broken TLS.
* Background workers (see :class:`Worker`) run beside the server and stop with it.
"""

from __future__ import annotations

import base64
import errno
import heapq
import hmac
import logging
import re
import resource
import select
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import h11
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from shared.devhost.functions import FunctionTable
from shared.devhost.invoke import HostRequest, invoke_http
from shared.faults import raised_at
from shared.problems import (
    INTERNAL_ERROR,
    REQUEST_FUNCTION_KEY_REQUIRED,
    REQUEST_HEADERS_TOO_LARGE,
    REQUEST_MALFORMED,
    REQUEST_METHOD_NOT_ALLOWED,
    REQUEST_NOT_FOUND,
    REQUEST_TOO_LARGE,
    REQUEST_URI_TOO_LONG,
    Finding,
    ProblemType,
    problem_result,
)
from shared.web import HttpResult

logger = logging.getLogger("dip_edge.devhost")

SERVER_NAME = "dip-edge-devhost"
# Mozilla's "intermediate" TLS 1.2 list (TLS 1.3 uses OpenSSL's default suites, which are
# Mozilla's). The DHE suites need DH parameters, which are not loaded: every client of the
# intermediate profile negotiates ECDHE.
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")
# Descriptors kept for the listener, logs, the inbox, workers: never given to connections.
FD_RESERVE = 64
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_EVICTABLE = frozenset({"handshake", "head", "body"})
# RFC 3986 host (reg-name or IP literal) and an optional port: no userinfo, path or query.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9\-._~%!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


class Worker(Protocol):
    """A background job of the local host (a timer runner, a queue poller...).

    ``run(stop)`` is called in its own thread when the host starts and must return soon
    after ``stop`` is set (wait on it, e.g. ``stop.wait(interval)``, instead of sleeping).
    """

    name: str

    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class Limits:
    """Deadlines (seconds) and sizes of the front door. Kestrel's sizes (the Functions
    host's server): 8 KiB request line, 32 KiB head."""

    head_timeout: float = 30.0  # a request head unfinished this long after it began
    body_timeout: float = 60.0  # a body, and a response write, unfinished this long
    idle_timeout: float = 60.0  # keep-alive: between requests
    handshake_timeout: float = 10.0
    max_connections: int = 1000
    max_request_line: int = 8192
    max_head_bytes: int = 32768
    backlog: int = 1024  # the kernel caps it at net.core.somaxconn


BodyLimit = tuple[int, ProblemType]  # largest body, and the problem that refuses a larger one


def server_tls_context(cert_file: str, key_file: str,
                       client_cas: Iterable[str] | None = None) -> SSL.Context:
    """TLS 1.2+ server context requiring a client certificate.

    With ``client_cas`` None (App Service's ``Required``), any certificate is accepted and
    the function decides; with ``client_cas`` (PEM texts: roots, and intermediates that help
    build chains), the handshake refuses a certificate that does not chain to them.
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(MOZILLA_INTERMEDIATE_CIPHERS.encode())
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # idle connections hold no 34 KB buffers
    context.use_certificate_chain_file(cert_file)
    context.use_privatekey_file(key_file)
    context.check_privatekey()
    # Resumption with a client certificate needs a session ID context; the session (and
    # the ticket) carries the certificate first presented, forwarded again on resumption.
    context.set_session_id(b"dip-edge-serve")
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    required = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    if client_cas is None:
        context.set_verify(required, lambda _conn, _cert, _errno, _depth, _ok: True)
        return context
    store = context.get_cert_store()
    if store is None:  # pyOpenSSL makes one with every context
        raise RuntimeError("the TLS context has no certificate store")
    anchors = []
    for text in client_cas:
        for cert in x509.load_pem_x509_certificates(text.encode()):
            store.add_cert(crypto.X509.from_cryptography(cert))
            anchors.append(cert)
    context.set_client_ca_list([crypto.X509.from_cryptography(c).get_subject()
                                for c in anchors])
    context.set_verify(required, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
    return context


class _Timeout(Exception):
    pass


class _Closed(Exception):
    """The peer went away (or the connection was evicted) in the middle of something."""


class _Refusal(Exception):
    """Answer ``result`` and close the connection."""

    def __init__(self, result: HttpResult) -> None:
        super().__init__(result.status)
        self.result = result


def _refuse(finding: Finding) -> _Refusal:
    return _Refusal(problem_result(finding))


def tls_error_reason(exc: Exception) -> str:
    """One line for an OpenSSL error: its reasons, never a traceback."""
    if isinstance(exc, SSL.SysCallError):
        return "the connection was closed" if exc.args and exc.args[0] in (-1, 0) else (
            errno.errorcode.get(exc.args[0], "socket error") if exc.args else "socket error")
    errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [e[2] for e in errors if isinstance(e, tuple) and len(e) == 3 and e[2]]
    return "; ".join(reasons) or type(exc).__name__


class _Connection:
    """One accepted connection: TLS over a non-blocking socket, every wait with a deadline."""

    def __init__(self, sock: socket.socket, address: tuple, context: SSL.Context) -> None:
        self.sock = sock
        self.address = address[0]
        self.tls = SSL.Connection(context, sock)
        self.tls.set_accept_state()
        self.accepted = time.monotonic()
        self.phase, self.since = "handshake", self.accepted
        self.evicted = False
        self._lock = threading.Lock()
        self._closed = False

    def set_phase(self, phase: str) -> None:
        self.phase, self.since = phase, time.monotonic()

    def _wait(self, events: int, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        poller = select.poll()  # not select(): descriptors may exceed FD_SETSIZE
        poller.register(self.sock, events)
        if not poller.poll(max(1, int(remaining * 1000))):
            raise _Timeout
        if self.evicted:
            raise _Closed

    def _io(self, operation, deadline: float):
        while True:
            try:
                return operation()
            except SSL.WantReadError:
                self._wait(select.POLLIN, deadline)
            except SSL.WantWriteError:
                self._wait(select.POLLOUT, deadline)

    def handshake(self, deadline: float) -> None:
        self._io(self.tls.do_handshake, deadline)

    def recv(self, deadline: float) -> bytes:
        """Up to 64 KiB; b"" when the peer has closed."""
        try:
            return self._io(lambda: self.tls.recv(65536), deadline)
        except SSL.ZeroReturnError:
            return b""
        except SSL.SysCallError:
            return b""  # EOF or reset without close_notify

    def sendall(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            chunk = view[:65536]
            sent = self._io(lambda chunk=chunk: self.tls.send(chunk), deadline)
            view = view[sent:]

    def peer_certificate_der(self) -> bytes | None:
        cert = self.tls.get_peer_certificate(as_cryptography=True)
        return cert.public_bytes(Encoding.DER) if cert is not None else None

    def evict(self) -> None:
        """Wake the connection's thread, which then closes it (called from other threads)."""
        with self._lock:
            if self._closed:
                return
            self.evicted = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self, *, linger: bool = False) -> None:
        """Close; with ``linger``, send close_notify and FIN first and discard what the
        client still sends (for a second at most), so it reads our last answer (or alert)
        instead of a reset."""
        if linger and not self.evicted:
            try:
                self.tls.shutdown()
            except (SSL.Error, OSError):
                pass
            try:
                self.sock.shutdown(socket.SHUT_WR)
                deadline, drained = time.monotonic() + 1.0, 0
                while drained < 1 << 20:
                    self._wait(select.POLLIN, deadline)
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    drained += len(data)
            except (OSError, _Timeout, _Closed):
                pass
        with self._lock:
            self._closed = True
            self.sock.close()


class _Registry:
    """The live connections, at most ``capacity``; past it the longest unfinished goes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._live: set[_Connection] = set()
        self._lock = threading.Lock()
        self._warned = 0.0

    def admit(self, connection: _Connection) -> bool:
        with self._lock:
            staying = [c for c in self._live if not c.evicted]
            over = len(staying) + 1 - self.capacity
            victims = heapq.nsmallest(over, (c for c in staying if c.phase in _EVICTABLE),
                                      key=lambda c: c.since) if over > 0 else []
            admitted = len(victims) >= over
            if admitted:
                self._live.add(connection)
        for victim in victims:
            victim.evict()
        if over > 0:
            self._warn(admitted)
        return admitted

    def evict_oldest(self) -> None:
        with self._lock:
            candidates = [c for c in self._live if not c.evicted and c.phase in _EVICTABLE]
            victim = min(candidates, key=lambda c: c.since, default=None)
        if victim is not None:
            victim.evict()

    def _warn(self, admitted: bool) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:  # once a minute, not once per connection
            self._warned = now
            logger.warning("%d connections (the limit): %s", self.capacity,
                           "closing the longest unfinished ones for new ones" if admitted
                           else "all busy, refusing new ones")

    def remove(self, connection: _Connection) -> None:
        with self._lock:
            self._live.discard(connection)

    def all(self) -> list[_Connection]:
        with self._lock:
            return list(self._live)


def connection_capacity(configured: int) -> int:
    """``configured``, capped by the descriptors this process may open (less a reserve)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_RESERVE))


def check_head(head: bytes, limits: Limits, *, complete: bool) -> Finding | None:
    """What is wrong with a (possibly partial) request head that h11 would let through,
    or that must be answered with 414/431."""
    first_end = head.find(b"\r\n")
    if (first_end if first_end >= 0 else len(head)) > limits.max_request_line:
        return REQUEST_URI_TOO_LONG(
            f"The request line is longer than {limits.max_request_line} bytes.")
    if len(head) > limits.max_head_bytes:
        return REQUEST_HEADERS_TOO_LARGE(
            f"The request head is larger than {limits.max_head_bytes} bytes.")
    scanned = head if complete or not head.endswith(b"\r") else head[:-1]
    if _BARE_CR_OR_LF.search(scanned):
        return REQUEST_MALFORMED("A line of the request head has a bare CR or LF; lines end "
                                 "with CRLF (RFC 9112 2.2).")
    if complete and any(line[:1] in (b" ", b"\t") for line in head.split(b"\r\n")[1:-2]):
        return REQUEST_MALFORMED("The request head has a folded header line (obs-fold, "
                                 "RFC 9112 5.2).")
    return None


class _Server:
    def __init__(self, address: tuple[str, int], tls: SSL.Context, functions: FunctionTable,
                 function_key: str | None, limits: Limits,
                 body_limits: Mapping[str, BodyLimit], default_body_limit: BodyLimit) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        # A restart must not wait a minute for the last run's TIME_WAIT connections. On
        # POSIX (serve is POSIX-only: `resource`) this never lets a second listener share
        # the port; SO_REUSEPORT would.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(address)
            self.listener.listen(limits.backlog)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()
        self.tls = tls
        self.functions = functions
        self.function_key = function_key
        self.limits = limits
        self.body_limits = dict(body_limits)
        self.default_body_limit = default_body_limit
        self.registry = _Registry(connection_capacity(limits.max_connections))
        self.stopping = threading.Event()

    # -- accepting -------------------------------------------------------------------------

    def accept_forever(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(100):
                continue
            while not self.stopping.is_set():  # drain a burst in one wake-up
                try:
                    sock, address = self.listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        # Out of descriptors: make room, and let the evicted thread close.
                        self.registry.evict_oldest()
                        self.registry._warn(True)
                        self.stopping.wait(0.01)
                    break
                self._start(sock, address)

    def _start(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock, address, self.tls)
        if not self.registry.admit(connection):
            sock.close()
            return
        try:
            threading.Thread(target=self._serve, args=(connection,), daemon=True,
                             name="devhost-connection").start()
        except RuntimeError:  # no more threads
            self.registry.remove(connection)
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        for connection in self.registry.all():
            connection.evict()
        self.listener.close()

    # -- one connection --------------------------------------------------------------------

    def _serve(self, connection: _Connection) -> None:
        linger = False
        try:
            try:
                connection.handshake(connection.accepted + self.limits.handshake_timeout)
            except SSL.Error as exc:
                logger.info("TLS handshake with %s failed: %s", connection.address,
                            tls_error_reason(exc))
                linger = True  # so the client reads the alert
                return
            peer = connection.peer_certificate_der()
            client_cert = base64.b64encode(peer).decode() if peer else None
            buffered: bytes | None = b""
            first = True
            while buffered is not None and not self.stopping.is_set():
                try:
                    buffered = self._exchange(connection, client_cert, buffered, first)
                except _Refusal as refusal:
                    self._write_problem(connection, refusal.result)
                    linger = True
                    return
                if buffered is None:
                    return
                first = False
        except _Timeout:
            logger.debug("connection from %s: %s deadline passed, closed", connection.address,
                         connection.phase)
        except _Closed:
            logger.debug("connection from %s closed during %s", connection.address,
                         connection.phase)
        except SSL.Error as exc:
            logger.info("TLS error with %s: %s", connection.address, tls_error_reason(exc))
        except OSError as exc:
            logger.info("connection from %s: %s", connection.address,
                        errno.errorcode.get(exc.errno or 0, type(exc).__name__))
        except Exception as exc:  # noqa: BLE001 - one connection must not take the host down
            logger.error("connection from %s failed: %s", connection.address,
                         type(exc).__name__)
        finally:
            self.registry.remove(connection)
            try:
                connection.close(linger=linger)
            except OSError:
                pass

    def _read_head(self, connection: _Connection, buffered: bytes,
                   first: bool) -> tuple[bytes, bytes] | None:
        """(head, what follows it), or None when the client closed between requests."""
        limits = self.limits
        connection.set_phase("head")
        deadline = (connection.accepted + limits.head_timeout if first
                    else time.monotonic() + limits.idle_timeout)
        started = False
        while True:
            # RFC 9112 2.2: empty lines before a request line are ignored.
            buffered = buffered.lstrip(b"\r\n") if buffered[:1] in (b"\r", b"\n") else buffered
            if buffered and not started:
                started = True
                deadline = min(deadline, time.monotonic() + limits.head_timeout)
            end = buffered.find(b"\r\n\r\n")
            head = buffered if end < 0 else buffered[:end + 4]
            problem = check_head(head, limits, complete=end >= 0)
            if problem is not None:
                raise _refuse(problem)
            if end >= 0:
                return head, buffered[end + 4:]
            data = connection.recv(deadline)
            if not data:
                if buffered:
                    raise _Closed
                return None
            buffered += data

    def _exchange(self, connection: _Connection, client_cert: str | None, buffered: bytes,
                  first: bool) -> bytes | None:
        """Serve one request; what was read past it, or None to close quietly."""
        got = self._read_head(connection, buffered, first)
        if got is None:
            return None
        head, rest = got
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        parser.receive_data(head)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise _refuse(REQUEST_MALFORMED(
                f"The request head is not valid HTTP/1.1: {str(exc).split(':')[0]}.")) from None
        if not isinstance(event, h11.Request):
            raise _refuse(REQUEST_MALFORMED("The request head is incomplete."))
        names = {name for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            raise _refuse(REQUEST_MALFORMED(
                "Transfer-Encoding and Content-Length together (RFC 9112 6.1)."))
        try:
            method, target = event.method.decode("ascii"), event.target.decode("ascii")
        except UnicodeDecodeError:
            raise _refuse(REQUEST_MALFORMED("The request target is not ASCII.")) from None
        # (The query is redacted by serve's log filter, like every URL's, whoever logs it.)
        logger.debug("%s: %s %s HTTP/%s", connection.address, method, target,
                     event.http_version.decode())
        if target.startswith(("http://", "https://")):
            try:
                parts = urlsplit(target)  # absolute-form (RFC 9112 3.2.2)
            except ValueError:  # e.g. "https://[/x": an unclosed IPv6 literal
                raise _refuse(REQUEST_MALFORMED(
                    "The request target is not a valid absolute URL.")) from None
        else:  # origin-form: "//x/y" is a path, not a host
            path, _, query = target.partition("#")[0].partition("?")
            parts = urlsplit("")._replace(path=path, query=query)
        route, route_params = self._route(method, parts.path, parts.query, event)
        headers: dict[str, str] = {}
        spelled: dict[str, str] = {}  # lower-cased name -> the first spelling (a 32 KiB
        # head holds thousands of names: no scan of the headers per header)
        for name, value in event.headers.raw_items():
            key = name.decode("latin-1")
            if key.lower() == "x-arr-clientcert":  # only the handshake's certificate counts
                continue
            text = value.decode("latin-1")
            existing = spelled.setdefault(key.lower(), key)
            if existing in headers:
                headers[existing] += ", " + text
            else:
                headers[existing] = text
        if client_cert:
            headers["X-ARR-ClientCert"] = client_cert
        body, leftover = self._read_body(connection, parser, event, rest, route,
                                        parts.path)
        # An absolute-form target (RFC 9112 3.2.2) names the host itself. HTTP/1.0 may
        # leave Host out (h11 requires it of 1.1 only).
        host = parts.netloc or next((v for k, v in headers.items() if k.lower() == "host"), "")
        if not _is_authority(host):
            # The function builds URLs from it (the signed URL, same-origin checks).
            raise _refuse(REQUEST_MALFORMED("The request names no valid host (Host must be "
                                            "host or host:port, RFC 9112 3.2)."))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = HostRequest(method=method, url=f"https://{host}{path}", headers=headers,
                              params=dict(parse_qsl(parts.query)), route_params=route_params,
                              body=body)
        connection.set_phase("busy")
        try:
            response = invoke_http(route, request)
            status, out_headers, out_body = response.status, dict(response.headers), \
                response.body
        except Exception as exc:  # noqa: BLE001 - the host must answer whatever happens
            logger.error("function %s raised %s at %s", route.name, type(exc).__name__,
                         raised_at(exc))
            result = problem_result(INTERNAL_ERROR("The function failed; see the host's log."))
            status, out_headers, out_body = result.status, dict(result.headers), result.body
        logger.info("%s %s -> %d", method, parts.path, status)
        keep_alive = self._respond(connection, parser, status, out_headers, out_body, method)
        return leftover if keep_alive else None

    def _route(self, method: str, path: str, query: str, event: h11.Request):
        matches = self.functions.resolve(path)
        if not matches:
            raise _refuse(REQUEST_NOT_FOUND(f"Nothing is served at {path}."))
        chosen = next(((r, p) for r, p in matches if method in r.methods), None)
        if chosen is None:
            allowed = ", ".join(sorted({m for r, _ in matches for m in r.methods}))
            result = problem_result(REQUEST_METHOD_NOT_ALLOWED(
                f"{path} accepts {allowed}, not {method}."))
            raise _Refusal(HttpResult(result.status, result.body,
                                      {**result.headers, "Allow": allowed}))
        route, params = chosen
        key = self.function_key
        if key is not None and route.auth_level.upper() != "ANONYMOUS":
            offered = next((v.decode("latin-1") for k, v in event.headers
                            if k == b"x-functions-key"), None)
            if offered is None:
                offered = dict(parse_qsl(query)).get("code", "")
            if not hmac.compare_digest(offered.encode(), key.encode()):
                raise _refuse(REQUEST_FUNCTION_KEY_REQUIRED(
                    f"{path} needs the function key, in x-functions-key or ?code=."))
        return route, params

    def _read_body(self, connection: _Connection, parser: h11.Connection,
                   request: h11.Request, rest: bytes, route, path: str) -> tuple[bytes, bytes]:
        limit, too_large = self.body_limits.get(route.name, self.default_body_limit)
        # h11 has checked that Content-Length is digits and one value.
        declared = next((int(v) for k, v in request.headers if k == b"content-length"), None)
        if declared is not None and declared > limit:
            raise _refuse(too_large(f"The body is {declared} bytes; {path} accepts at most "
                                    f"{limit}."))
        connection.set_phase("body")
        deadline = time.monotonic() + self.limits.body_timeout
        if parser.they_are_waiting_for_100_continue:
            connection.sendall(parser.send(h11.InformationalResponse(status_code=100,
                                                                     headers=[])), deadline)
        if rest:  # (b"" would tell h11 the client closed)
            parser.receive_data(rest)
        chunks, size = [], 0
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError:
                raise _refuse(REQUEST_MALFORMED(
                    "The body does not follow its framing (Content-Length or chunked)."
                )) from None
            if event is h11.NEED_DATA:
                data = connection.recv(deadline)
                if not data:
                    # A truncated request is never passed on, and there is nobody to answer.
                    logger.info("%s: the client closed after %d body bytes", path, size)
                    raise _Closed
                parser.receive_data(data)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise _refuse(too_large(f"The body is over {limit} bytes, the most "
                                            f"{path} accepts."))
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks), parser.trailing_data[0]

    def _respond(self, connection: _Connection, parser: h11.Connection, status: int,
                 headers: dict[str, str], body: bytes, method: str) -> bool:
        """Write the function's answer; whether the connection stays open."""
        fields = [("Server", SERVER_NAME), ("Date", formatdate(usegmt=True)),
                  ("Content-Length", str(len(body)))]
        fields += [(k, v) for k, v in headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                        "date", "server")]
        try:
            payload = parser.send(h11.Response(status_code=status, headers=fields,
                                               reason=_reason(status)))
            if method != "HEAD":
                payload += parser.send(h11.Data(data=body))
            payload += parser.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            logger.error("the function's answer is not valid HTTP (status %d)", status)
            result = problem_result(INTERNAL_ERROR("The function's answer could not be sent."))
            self._write_problem(connection, result)
            return False
        connection.sendall(payload, time.monotonic() + self.limits.body_timeout)
        return parser.our_state is h11.DONE and parser.their_state is h11.DONE

    def _write_problem(self, connection: _Connection, result: HttpResult) -> None:
        logger.info("refused a request from %s: %d", connection.address, result.status)
        lines = [f"HTTP/1.1 {result.status} {_reason(result.status).decode()}",
                 f"Server: {SERVER_NAME}", f"Date: {formatdate(usegmt=True)}",
                 f"Content-Length: {len(result.body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in result.headers.items()
                  if k.lower() not in ("content-length", "connection")]
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + result.body
        connection.set_phase("busy")
        try:
            connection.sendall(payload, time.monotonic() + self.limits.handshake_timeout)
        except (SSL.Error, OSError, _Timeout, _Closed):
            pass


def _is_authority(host: str) -> bool:
    """Whether ``host`` is ``host[:port]`` (a name, IPv4 or a bracketed IPv6 literal)."""
    if not _AUTHORITY.fullmatch(host):
        return False
    try:
        parts = urlsplit(f"https://{host}/")
        parts.port  # noqa: B018 - raises ValueError past 65535
    except ValueError:  # a bracketed literal that is not an IP address
        return False
    return bool(parts.hostname)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class DevHost:
    """``DevHost(functions, tls, host, port, workers=..., function_key=..., limits=...,
    body_limits=...)``; ``start()``, then ``stop()``.

    Binding happens in the constructor, so with ``port=0`` :attr:`port` is the port
    the system picked. With a ``function_key``, functions whose auth level is not
    anonymous answer 401 unless the request carries it (``x-functions-key`` or ``?code=``).
    ``body_limits`` maps function names to their largest body (and the problem refusing a
    larger one); other functions get ``default_body_limit``.
    """

    def __init__(self, functions: FunctionTable, tls: SSL.Context, host: str = "127.0.0.1",
                 port: int = 8443, *, workers: Sequence[Worker] = (),
                 function_key: str | None = None, limits: Limits = Limits(),
                 body_limits: Mapping[str, BodyLimit] | None = None,
                 default_body_limit: BodyLimit = (4 * 1024 * 1024, REQUEST_TOO_LARGE)) -> None:
        self._server = _Server((host, port), tls, functions, function_key, limits,
                               body_limits or {}, default_body_limit)
        self.host = host
        self.port = self._server.address[1]
        self.workers = list(workers)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def max_connections(self) -> int:
        return self._server.registry.capacity

    @property
    def base_url(self) -> str:
        shown = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"https://[{shown}]:{self.port}" if ":" in shown else f"https://{shown}:{self.port}"

    def start(self) -> None:
        serve = threading.Thread(target=self._server.accept_forever, name="devhost-accept",
                                 daemon=True)
        serve.start()
        self._threads.append(serve)
        for worker in self.workers:
            thread = threading.Thread(target=self._run_worker, args=(worker,),
                                      name=f"devhost-{worker.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run_worker(self, worker: Worker) -> None:
        try:
            worker.run(self._stop)
        except Exception as exc:  # noqa: BLE001 - one worker's failure must not stop the host
            logger.error("background worker %s stopped: %s at %s", worker.name,
                         type(exc).__name__, raised_at(exc))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._server.stop()
        for thread in self._threads:
            thread.join(timeout)
