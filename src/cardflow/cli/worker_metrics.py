"""``cardflow worker --metrics-port``: the worker's own Prometheus metrics over HTTP.

A worker executes runs, so its runs, card calls and token requests are counted in its own
process: ``/metrics`` of ``cardflow serve`` cannot see them. This small threaded server
(prometheus_client's WSGI server class) answers ``GET /metrics`` with them, behind an API
token unless CARDFLOW_METRICS_PUBLIC=1, like serve's. The queue's gauges (depth, oldest
job, live workers) are serve's to give: they are the same whichever process reads them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer

from cardflow.app import Cardflow
from cardflow.errors import CardflowError, NotFound, Unauthorized
from cardflow.metrics import exposition

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the worker's log


def _error(start_response: StartResponse, status: str, error: CardflowError) -> Iterable[bytes]:
    body = json.dumps({"error": error.to_dict()}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if isinstance(error, Unauthorized):
        headers.append(("WWW-Authenticate", "Bearer"))
    start_response(status, headers)
    return [body]


def metrics_app(cf: Cardflow) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
            return _error(
                start_response, "404 Not Found", NotFound("A worker serves GET /metrics only.")
            )
        if not cf.settings.metrics_public:
            scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
            try:
                cf.api_tokens.authenticate(token.strip() if scheme.lower() == "bearer" else None)
            except Unauthorized as exc:
                return _error(start_response, "401 Unauthorized", exc)
        body, content_type = exposition()
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def serve_metrics(cf: Cardflow, host: str, port: int) -> ThreadingWSGIServer:
    """Start answering on host:port in a daemon thread (OSError if it cannot listen)."""
    server = make_server(host, port, metrics_app(cf), ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="cardflow-metrics", daemon=True).start()
    return server
