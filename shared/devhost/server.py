"""An HTTPS front door like App Service's, dispatching to the functions of ``function_app.py``.

* TLS 1.2+, client certificate required (verified against the given CA certificates);
  the TLS handshake runs in the connection's thread, so a slow client blocks nobody.
* Like App Service, it forwards the handshake's client certificate to the function in
  ``X-ARR-ClientCert`` (base64 DER) and drops any ``X-ARR-ClientCert`` the caller sent.
* HTTP/1.1 keep-alive; each response is written in one buffer with TCP_NODELAY set, so
  small responses don't stall on Nagle / delayed ACK.
* Requests reach the function through :mod:`shared.devhost.invoke` and its answer is
  written back. Function-level routes need the host's key, as in Azure.
* Background workers (see :class:`Worker`) run beside the server and stop with it.
"""

from __future__ import annotations

import base64
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from shared.devhost.functions import FunctionTable
from shared.devhost.invoke import HostRequest, invoke_http
from shared.problems import (
    INTERNAL_ERROR,
    REQUEST_FUNCTION_KEY_REQUIRED,
    REQUEST_MALFORMED,
    REQUEST_METHOD_NOT_ALLOWED,
    REQUEST_NOT_FOUND,
    REQUEST_TOO_LARGE,
    problem_result,
)
from shared.web import HttpResult

logger = logging.getLogger("dip_edge.devhost")

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
MAX_BODY_BYTES = 100 * 1024 * 1024  # the front door's own cap; functions apply theirs


class Worker(Protocol):
    """A background job of the local host (a timer runner, a queue poller...).

    ``run(stop)`` is called in its own thread when the host starts and must return soon
    after ``stop`` is set (wait on it, e.g. ``stop.wait(interval)``, instead of sleeping).
    """

    name: str

    def run(self, stop: threading.Event) -> None: ...


def server_tls_context(cert_file: str, key_file: str, client_cas: Iterable[str]) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate issued under ``client_cas``
    (PEM texts: roots, and intermediates to help build chains)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata="\n".join(client_cas))
    return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Don't let a second serve on the same port silently share it.
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext,
                 functions: FunctionTable, function_key: str | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.tls = tls
        self.functions = functions
        self.function_key = function_key
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.info("TLS handshake with %s failed: %s", client_address[0],
                        getattr(exc, "reason", None) or type(exc).__name__)
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dip-edge-devhost"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: _Server

    def __getattr__(self, name: str):
        # Every method, declared or not (QUERY, TRACE...), goes through the route table,
        # which answers an undeclared one with a 405 problem document, as the host does.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - base class signature
        logger.debug(format, *args)

    def _dispatch(self) -> None:
        target = urlsplit(self.path)
        matches = self.server.functions.resolve(target.path)
        if not matches:
            self._problem(problem_result(REQUEST_NOT_FOUND(f"Nothing is served at {target.path}.")))
            return
        chosen = next(((r, p) for r, p in matches if self.command in r.methods), None)
        if chosen is None:
            allowed = ", ".join(sorted({m for r, _ in matches for m in r.methods}))
            result = problem_result(REQUEST_METHOD_NOT_ALLOWED(
                f"{target.path} accepts {allowed}, not {self.command}."))
            self._problem(HttpResult(result.status, result.body, {**result.headers,
                                                                  "Allow": allowed}))
            return
        route, route_params = chosen
        if not self._authorized(route, target.query):
            self._problem(problem_result(REQUEST_FUNCTION_KEY_REQUIRED(
                f"{target.path} needs the function key, in x-functions-key or ?code=.")))
            return
        body = self._read_body()
        if body is None:
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "x-arr-clientcert"}
        peer = self.connection.getpeercert(binary_form=True)
        if peer:
            headers["X-ARR-ClientCert"] = base64.b64encode(peer).decode()
        # An absolute-form target (RFC 9112 3.2.2) names the host itself.
        host = (target.netloc or self.headers.get("Host")
                or "{}:{}".format(*self.server.server_address[:2]))
        path = target.path + (f"?{target.query}" if target.query else "")
        request = HostRequest(method=self.command, url=f"https://{host}{path}",
                              headers=headers, params=dict(parse_qsl(target.query)),
                              route_params=route_params, body=body)
        try:
            response = invoke_http(route, request)
        except Exception as exc:  # noqa: BLE001 - the host must answer whatever happens
            logger.error("function %s raised %s", route.name, type(exc).__name__)
            result = problem_result(INTERNAL_ERROR("The function failed; see the host's log."))
            self._write(result.status, result.headers, result.body)
            return
        logger.info("%s %s -> %d", self.command, target.path, response.status)
        self._write(response.status, dict(response.headers), response.body)

    def _authorized(self, route, query: str) -> bool:
        """Function-level routes need the host's key, as in Azure (anonymous ones don't)."""
        key = self.server.function_key
        if key is None or route.auth_level.upper() == "ANONYMOUS":
            return True
        offered = self.headers.get("x-functions-key") or dict(parse_qsl(query)).get("code", "")
        return hmac.compare_digest(offered.encode(), key.encode())

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._problem(HttpResult(411, b"Length Required\n", {"Content-Type": "text/plain"}))
            return None
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self._problem(problem_result(REQUEST_MALFORMED("Content-Length is not a number.")))
            return None
        if length > MAX_BODY_BYTES:
            self._problem(problem_result(REQUEST_TOO_LARGE(
                f"The body is {length} bytes; this host accepts at most {MAX_BODY_BYTES}.")))
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client closed before the end of its body: a truncated request is never
            # passed on, and there is nobody to answer.
            logger.info("%s %s: the client closed after %d of %d body bytes", self.command,
                        urlsplit(self.path).path, len(body), length)
            self.close_connection = True
            return None
        return body

    def _problem(self, result: HttpResult) -> None:
        # The body was not read: the connection can't be reused (_write says so).
        self.close_connection = True
        self._write(result.status, result.headers, result.body)

    def _write(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
        if self.close_connection:
            lines.append("Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(payload + (b"" if self.command == "HEAD" else body))


class DevHost:
    """``DevHost(functions, tls, host, port, workers=..., function_key=...)``; ``start()``,
    then ``stop()``.

    Binding happens in the constructor, so with ``port=0`` :attr:`port` is the port
    the system picked. With a ``function_key``, functions whose auth level is not
    anonymous answer 401 unless the request carries it (``x-functions-key`` or ``?code=``).
    """

    def __init__(self, functions: FunctionTable, tls: ssl.SSLContext, host: str = "127.0.0.1",
                 port: int = 8443, *, workers: Sequence[Worker] = (),
                 function_key: str | None = None) -> None:
        self._server = _Server((host, port), tls, functions, function_key)
        self.host = host
        self.port = self._server.server_address[1]
        self.workers = list(workers)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        shown = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"https://[{shown}]:{self.port}" if ":" in shown else f"https://{shown}:{self.port}"

    def start(self) -> None:
        # A short poll interval: stop() returns within it.
        serve = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                 name="devhost-http", daemon=True)
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
            logger.error("background worker %s stopped: %s", worker.name, type(exc).__name__)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout)
