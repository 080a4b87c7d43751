"""A loopback TCP proxy that puts distance and faults between a client and a server.

``TcpProxy(target_port)`` listens on a free loopback port and forwards every connection to
``127.0.0.1:target_port``. Between the two it can

* add a delay per direction (``delay(up=0.0025, down=0.0025)``: 5 ms of round trip), each
  chunk forwarded when due, so latency grows and throughput does not shrink;
* ``stall()``: accept connections and read what comes, forward nothing (a server that
  accepts and never answers) until ``heal()``, which forwards what was held;
* ``refuse()``: stop listening and reset every connection (connection refused);
* ``answer(503, "Server Busy", code="ServerBusy", count=n)``: answer the next ``n``
  HTTP requests (every one, if ``count`` is None) itself with that status and
  ``x-ms-error-code``, as a throttling or failing storage service does; open connections
  are reset first, so that every request after the call begins on a new connection;
* ``heal()``: back to plain forwarding.

It is a test double for the network, not for the server: the server behind it is real.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import struct
import threading
import time

_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._up = self._down = 0.0
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._answers: int | None = 0  # requests still to answer; None: all
        self._answer = (503, "Service Unavailable", None, "none")
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, args=(self._listener,),
                                           daemon=True)
        self._accepting.start()

    # -- controls -------------------------------------------------------------------------

    def delay(self, up: float = 0.0, down: float = 0.0) -> None:
        """Seconds added to every chunk going to the server (``up``) and back (``down``)."""
        self._up, self._down = up, down

    def stall(self) -> None:
        self._flowing.clear()

    def refuse(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown first: close() alone leaves a socket blocked in accept() listening.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._reset_all()

    def answer(self, status: int, reason: str, *, code: str | None = None,
               count: int | None = None, body: str = "xml") -> None:
        """``body``: ``xml`` (Blob and Queue storage's error document), ``json`` (Table
        storage's) or ``none``."""
        with self._lock:
            self._answer = (status, reason, code, body)
            self._answers = count
        self._reset_all()

    @property
    def answers_left(self) -> int | None:
        return self._answers

    def heal(self) -> None:
        with self._lock:
            self._answers = 0
            if self._listener is None and not self._closed:
                self._listener = self._listen(self.port)
                threading.Thread(target=self._accept, args=(self._listener,),
                                 daemon=True).start()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.refuse()
        self._flowing.set()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        return listener

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()

    def _reset_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                # Linger 0: close with a RST, as a dropped connection does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused or closed
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take_answer(self) -> tuple | None:
        with self._lock:
            if self._answers == 0:
                return None
            if self._answers is not None:
                self._answers -= 1
            return self._answer

    def _serve(self, client: socket.socket) -> None:
        pending = b""
        try:
            if self._answers != 0:
                pending = self._answer_requests(client)
                if pending is None:
                    return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                return
            server.settimeout(None)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(server)
            if pending:
                server.sendall(pending)
            down = threading.Thread(target=self._pump, args=(server, client, False),
                                    daemon=True)
            down.start()
            self._pump(client, server, True)
            down.join()
            self._forget(server)
        except OSError:
            pass
        finally:
            self._forget(client)

    def _answer_requests(self, client: socket.socket) -> bytes | None:
        """Answer whole HTTP requests while answers are due; then the bytes already read
        of the next request (to forward), or None when the client went away."""
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = client.recv(_CHUNK)
                if not data:
                    return None
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(rest) < length:
                data = client.recv(_CHUNK)
                if not data:
                    return None
                rest += data
            canned = self._take_answer()
            if canned is None:
                return head + b"\r\n\r\n" + rest  # this request goes to the server
            buffer = rest[length:]
            client.sendall(_response(*canned))

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        """Read from ``source`` and forward to ``sink``, each chunk when due."""
        due: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def writer() -> None:
            while True:
                at, data = due.get()
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                wait = at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._flowing.wait()
                try:
                    sink.sendall(data)
                except OSError:
                    return

        sending = threading.Thread(target=writer, daemon=True)
        sending.start()
        try:
            while True:
                data = source.recv(_CHUNK)
                due.put((time.monotonic() + (self._up if up else self._down), data))
                if not data:
                    break
        except OSError:
            due.put((0.0, b""))
        sending.join()


def _response(status: int, reason: str, code: str | None, body: str) -> bytes:
    """An error answer as Azure Storage writes them."""
    message = f"{reason} (injected by the test proxy)"
    if body == "xml":
        content = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code or status}'
                   f"</Code><Message>{message}</Message></Error>").encode()
        kind = "application/xml"
    elif body == "json":
        content = json.dumps({"odata.error": {"code": str(code or status), "message": {
            "lang": "en-US", "value": message}}}).encode()
        kind = "application/json;odata=minimalmetadata"
    else:
        content, kind = b"", None
    head = f"HTTP/1.1 {status} {reason}\r\n"
    if code:
        head += f"x-ms-error-code: {code}\r\n"
    if kind:
        head += f"Content-Type: {kind}\r\n"
    head += f"Content-Length: {len(content)}\r\nConnection: keep-alive\r\n\r\n"
    return head.encode() + content
