"""Run a fake's HTTP server on a background thread: ``start``/``stop`` or ``with``."""

from __future__ import annotations

import threading
from typing import Any


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
