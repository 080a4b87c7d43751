"""What the HTTPS fakes share: a request handler that hands every method to the fake and
writes each response in one buffer, and running the server on a background thread."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHandler(BaseHTTPRequestHandler):
    """Calls ``server.fake.handle(handler, METHOD)`` for every method."""

    protocol_version = "HTTP/1.1"

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return lambda: self.server.fake.handle(self, name[3:])
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def write_response(self, status: int, body: bytes, content_type: str,
                       headers: dict[str, str] | None = None) -> None:
        # One buffer per response: separate small writes meet Nagle/delayed-ACK stalls.
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class BackgroundServer:
    """Mixin for fakes: subclasses implement ``_make_server()`` (bound, not yet serving)."""

    _server: Any = None

    def _make_server(self) -> Any:
        raise NotImplementedError

    def start(self):
        self._server = self._make_server()
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name=type(self).__name__).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class TlsServer(ThreadingHTTPServer):
    """A loopback HTTPS server for ``fake``; subclasses give ``tls_context()``."""

    daemon_threads = True

    def __init__(self, fake: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), handler)

    def tls_context(self) -> ssl.SSLContext:
        raise NotImplementedError

    def handshake_failed(self) -> None:
        """Called when a client's TLS handshake fails (a refused certificate, say)."""

    def finish_request(self, request: socket.socket, client_address) -> None:
        # The handshake runs in the connection's own thread, so a refused client
        # certificate cannot stall the accept loop.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(10)
        try:
            tls = self.tls_context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failed()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request, client_address) -> None:
        pass
