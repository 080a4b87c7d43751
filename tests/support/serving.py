"""What the HTTPS fakes share: a request handler that hands every method to the fake and
writes each response in one buffer, and running the server on a background thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
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
