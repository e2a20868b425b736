"""A real HTTP Digest server: httpbin (the PyPI package), served by werkzeug in a thread.

httpbin's own routes check Digest as they always do — ``/digest-auth/auth/{user}/{password}
/{algorithm}`` with MD5, SHA-256 or SHA-512 — with the password in the URL. For secrets
that must never be in a URL (the sentinel tests), ``/hidden/{algorithm}`` runs httpbin's
same view with the user name and password this server was given.

Every request is recorded (path and the ``Authorization`` header it carried), so that a
test can count the round trips.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import httpbin
import httpbin.core
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

HOST = "127.0.0.1"


class DigestServer:
    """httpbin on 127.0.0.1 (ephemeral port)."""

    def __init__(self, username: str = "user", password: str = "passwd") -> None:
        self.username = username
        self.password = password
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._hidden = Flask(__name__)
        self._hidden.add_url_rule("/hidden/<algorithm>", view_func=self._hidden_view)

    def _hidden_view(self, algorithm: str) -> Any:
        return httpbin.core.digest_auth("auth", self.username, self.password, algorithm)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        with self._lock:
            self.requests.append((path, environ.get("HTTP_AUTHORIZATION")))
        app = self._hidden if path.startswith("/hidden/") else httpbin.app
        result: Iterable[bytes] = app(environ, start_response)
        return result

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("DigestServer already started")
        self._server = make_server(HOST, 0, self._app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="digest-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
