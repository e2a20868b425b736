"""A loopback HTTP server that plays the third-party API in integration tests.

`Upstream` runs an aiohttp application on 127.0.0.1 (ephemeral port) with its own event
loop in a daemon thread, so sync and async tests can both use it::

    with Upstream() as upstream:
        httpx.get(f"{upstream.url}/echo")
        assert upstream.requests[-1]["method"] == "GET"

Every request that reaches the server is recorded (see `EchoRecord`), whatever the route.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import socket
import ssl
import struct
import threading
from collections import Counter
from types import TracebackType
from typing import Self, TypedDict
from urllib.parse import parse_qsl, quote

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509

HOST = "127.0.0.1"
MIB = 1024 * 1024
_CHUNK = b"x" * (64 * 1024)
_NO_BODY_STATUSES = frozenset({204, 205, 304})
_XML_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soap:Body><GetCardResponse><Card><Id>42</Id><Name>hello</Name></Card>"
    "</GetCardResponse></soap:Body></soap:Envelope>"
)


class EchoRecord(TypedDict):
    """What `/echo` answers and what `Upstream.requests` holds, one per request."""

    method: str
    path: str
    raw_path: str
    query_string: str
    query: dict[str, list[str]]
    headers: list[list[str]]
    body: str
    body_b64: str


def _int_param(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    return default if value is None else int(value)


class Upstream:
    """Background aiohttp server on 127.0.0.1 serving the test routes."""

    def __init__(
        self,
        *,
        shutdown_timeout: float = 2.0,
        client_max_size: int = 64 * MIB,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``: serve HTTPS (a server context demanding client certificates
        makes the TLS handshake refuse a client without one)."""
        self.ssl_context = ssl_context
        self.shutdown_timeout = shutdown_timeout
        self.client_max_size = client_max_size
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[EchoRecord] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._protected: dict[str, tuple[str, str]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("Upstream is not running")
        return f"{'https' if self.ssl_context else 'http'}://{HOST}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("Upstream already started")
        self._ready.clear()
        self._startup_error = None
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="upstream-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("Upstream did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join(timeout=5)
            self._thread = None
            raise RuntimeError("Upstream failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            future.result(timeout=self.shutdown_timeout + 10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
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

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)  # this thread's loop, for aiohttp and asyncio.gather below
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self._make_app(), shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=self.ssl_context)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[EchoRecord]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def calls(self, key: str, route: str = "flaky") -> int:
        """How many times `/{route}/{key}` was called (route: "flaky", "unauthorized-once"
        or "token-relay")."""
        with self._lock:
            return self._counts[(route, key)]

    def protect(self, key: str, header: str, value: str) -> None:
        """`/protected/{key}` answers 200 only to requests whose ``header`` is ``value``
        (401 otherwise, or when nothing was set for the key)."""
        with self._lock:
            self._protected[key] = (header, value)

    def reset(self) -> None:
        """Forget recorded requests and per-key call counters."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    def _bump(self, route: str, key: str) -> int:
        with self._lock:
            self._counts[(route, key)] += 1
            return self._counts[(route, key)]

    # -- application -------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=self.client_max_size)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/echo/{tail:.*}", self._echo)
        app.router.add_get("/status/{code:\\d+}", self._status)
        app.router.add_get("/flaky/{key}", self._flaky)
        app.router.add_get("/json", self._json)
        app.router.add_get("/vnd-json", self._vnd_json)
        app.router.add_get("/text", self._text)
        app.router.add_get("/empty", self._empty)
        app.router.add_get("/empty200", self._empty200)
        app.router.add_get("/bad-json", self._bad_json)
        app.router.add_get("/xml", self._xml)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/hang", self._hang)
        app.router.add_get("/reset", self._reset)
        app.router.add_get("/big", self._big)
        app.router.add_get("/big-declared", self._big_declared)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/redirect-chain/{n:\\d+}", self._redirect_chain)
        app.router.add_get("/script", self._script)
        app.router.add_get("/unauthorized-once/{key}", self._unauthorized_once)
        app.router.add_route("*", "/protected/{key}", self._protected_route)
        app.router.add_route("*", "/reflect", self._reflect)
        app.router.add_route("*", "/reflect/{tail:.*}", self._reflect)
        app.router.add_post("/token-echo", self._token_echo)
        app.router.add_post("/token-relay/{key}", self._token_relay)
        app.router.add_route("*", "/pages/{style}", self._pages)
        app.router.add_get("/tls/peer", self._tls_peer)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = await self._describe(request)
        with self._lock:
            self._requests.append(record)
        return await handler(request)

    @staticmethod
    async def _describe(request: web.Request) -> EchoRecord:
        raw = await request.read()
        return {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query_string,
            "query": {key: request.query.getall(key) for key in request.query},
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in request.raw_headers
            ],
            "body": raw.decode("utf-8", errors="replace"),
            "body_b64": base64.b64encode(raw).decode("ascii"),
        }

    @staticmethod
    async def _tls_peer(request: web.Request) -> web.Response:
        """The client certificate presented in the TLS handshake: {"subject": RFC 4514 DN}
        (null without one)."""
        transport = request.transport
        der = None
        if transport is not None:
            tls = transport.get_extra_info("ssl_object")
            der = tls.getpeercert(binary_form=True) if tls is not None else None
        subject = None
        if der:
            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        return web.json_response({"subject": subject})

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response(await self._describe(request))

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        if code in _NO_BODY_STATUSES:
            return web.Response(status=code, headers=headers)
        if "body" in request.query:
            return web.Response(status=code, text=request.query["body"], headers=headers)
        return web.json_response({"status": code}, status=code, headers=headers)

    async def _flaky(self, request: web.Request) -> web.Response:
        calls = self._bump("flaky", request.match_info["key"])
        if calls <= _int_param(request, "fail", 0):
            code = _int_param(request, "code", 429)
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            return web.json_response({"status": code, "calls": calls}, status=code, headers=headers)
        return web.json_response({"calls": calls})

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response({"hello": "world", "n": 1})

    async def _vnd_json(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"hello": "world", "n": 1}, content_type="application/vnd.api+json"
        )

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="plain text")

    async def _empty(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _empty200(self, request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="application/json")

    async def _bad_json(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"oops": ', content_type="application/json")

    async def _xml(self, request: web.Request) -> web.Response:
        return web.Response(text=_XML_BODY, content_type="application/xml")

    async def _slow(self, request: web.Request) -> web.Response:
        seconds = float(request.query.get("seconds", "1"))
        await self._sleep_unless_stopping(seconds)
        return web.json_response({"slept": seconds})

    async def _hang(self, request: web.Request) -> web.Response:
        assert self._stopping is not None
        await self._stopping.wait()
        return web.Response(status=503, text="server stopping")

    async def _reset(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER with a zero timeout turns close() into a TCP RST.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=500, text="unreachable: the connection was reset")

    async def _big(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, declare_length=False)

    async def _big_declared(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, declare_length=True)

    async def _stream(self, request: web.Request, *, declare_length: bool) -> web.StreamResponse:
        total = _int_param(request, "mib", 50) * MIB
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        if declare_length:
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        # A client that enforces a size cap hangs up early: stop quietly when it does.
        with contextlib.suppress(ConnectionError):
            while sent < total and not self._is_stopping():
                chunk = _CHUNK[: total - sent]
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        """``code`` (302) to ``to`` (/echo). ``echo=query``: the request's query string is
        appended to ``to`` as it came; ``echo=next``: appended as one parameter, ``next``,
        holding the request's path and query URL-encoded (an API repeating the URL it was
        called with)."""
        target = request.query.get("to", "/echo")
        code = _int_param(request, "code", 302)
        echo = request.query.get("echo")
        if echo:
            raw = request.rel_url.raw_query_string
            repeated = raw if echo == "query" else "next=" + quote(request.raw_path, safe="")
            target += ("&" if "?" in target else "?") + repeated
        return web.Response(status=code, headers={"Location": target})

    async def _redirect_chain(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = "/echo" if n <= 0 else f"/redirect-chain/{n - 1}"
        return web.Response(status=302, headers={"Location": target})

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><script>alert(1)</script></body></html>", content_type="text/html"
        )

    async def _protected_route(self, request: web.Request) -> web.Response:
        with self._lock:
            expected = self._protected.get(request.match_info["key"])
        if expected is None or request.headers.get(expected[0]) != expected[1]:
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="upstream"'},
            )
        return web.json_response({"ok": True, "secret-ish body": "x" * 100})

    async def _unauthorized_once(self, request: web.Request) -> web.Response:
        if self._bump("unauthorized-once", request.match_info["key"]) == 1:
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return await self._echo(request)

    async def _reflect(self, request: web.Request) -> web.Response:
        """A careless API: answers ``status`` (default 200) repeating the request back, in
        its body and in its own headers (``X-Reflect-<n>``: the n-th request header's value,
        under a name that says nothing of secrets).

        The JSON body is the echo record (header values read as latin-1, as WSGI servers
        do) plus ``headers_utf8`` (as aiohttp reads them). ``format=text``: the body is
        ``pad`` x's, then the values of the request's headers (only ``header``'s, if given),
        one per line — to put a value astride a cut at a chosen byte."""
        status = _int_param(request, "status", 200)
        only = request.query.get("header")
        values = [
            value
            for name, value in request.headers.items()
            if only is None or name.lower() == only.lower()
        ]
        headers = {f"X-Reflect-{n}": value for n, value in enumerate(values)}
        if request.query.get("format") == "text":
            text = "x" * _int_param(request, "pad", 0) + "\n".join(values)
            return web.Response(status=status, text=text, headers=headers)
        record = dict(await self._describe(request))
        record["headers_utf8"] = [[name, value] for name, value in request.headers.items()]
        return web.json_response(record, status=status, headers=headers)

    async def _token_echo(self, request: web.Request) -> web.Response:
        """A token endpoint that refuses every request (``status``, default 400; ``error``,
        default invalid_client) with an ``error_description`` repeating what it received:
        the Authorization header, the Basic credentials decoded, the body raw and decoded."""
        return self._token_refusal(request, await request.read())

    async def _token_relay(self, request: web.Request) -> web.Response:
        """The first ``relay`` (default 1) requests for this key go on to the token endpoint
        ``to`` (a loopback URL) and its answer comes back as it is; later ones are refused
        as by /token-echo: a provider that starts echoing what it receives."""
        raw = await request.read()
        target = request.query.get("to", "")
        if not target.startswith(f"http://{HOST}:"):
            return web.json_response({"error": "to must be a loopback URL"}, status=400)
        if self._bump("token-relay", request.match_info["key"]) > _int_param(request, "relay", 1):
            return self._token_refusal(request, raw)
        forwarded = {
            name: request.headers[name]
            for name in ("Authorization", "Content-Type", "Accept")
            if name in request.headers
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=raw, headers=forwarded) as answer,
        ):
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "application/json")
        return web.Response(status=answer.status, body=body, headers={"Content-Type": content_type})

    @staticmethod
    def _token_refusal(request: web.Request, raw: bytes) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        basic = ""
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, ValueError):
                basic = base64.b64decode(credentials).decode("latin-1")
        body = raw.decode("utf-8", errors="replace")
        form = parse_qsl(body, keep_blank_values=True)
        received = {"authorization": authorization, "basic": basic, "body": body, "form": form}
        description = (
            f"received Authorization: {authorization} (client {basic}) body: {body} form: "
            + " ".join(f"{name}={value}" for name, value in form)
            + f" as JSON: {json.dumps(received)}"
        )
        return web.json_response(
            {
                "error": request.query.get("error", "invalid_client"),
                "error_description": description,
            },
            status=_int_param(request, "status", 400),
        )

    async def _pages(self, request: web.Request) -> web.Response:
        """A paging API over items ``{"id": 0}``, ``{"id": 1}``… (``total``, default 25;
        ``size`` per page, default 10; ``pad``: that many x's in each item, to make pages
        big; ``forever``: every page has a next one, however far; ``delay``: seconds each
        page takes). Where the next page is
        (``style``):

        - ``next``: ``{"data", "next", "links": {"next"}}`` with an absolute next URL
          (``relative``: a path; ``next_host``: on that host, same port), ``page`` counts;
        - ``link``: a list, and ``Link: <…>; rel="next"`` with a relative URL;
        - ``page`` / ``offset``: ``{"data"}``, from ``page`` (from 1) or ``offset`` (from 0)
          in the query or the JSON body;
        - ``cursor``: ``{"data", "meta": {"next_cursor"}}``, from ``cursor`` in the query or
          the JSON body.

        ``fail_page=N`` with ``key``: page N answers 429 (Retry-After: 0) the first time."""
        style = request.match_info["style"]
        query = request.query
        raw = await request.read()
        sent = json.loads(raw) if raw else {}

        def param(name: str) -> str | None:
            value = sent.get(name, query.get(name)) if isinstance(sent, dict) else None
            return None if value is None else str(value)

        total = _int_param(request, "total", 25)
        size = _int_param(request, "size", 10)
        pad = _int_param(request, "pad", 0)
        if style == "offset":
            start = int(param("offset") or 0)
        elif style == "cursor":
            start = int((param("cursor") or "c0")[1:])
        else:
            start = (int(param("page") or 1) - 1) * size
        number = start // size + 1
        if (
            str(number) == query.get("fail_page")
            and self._bump("pages", f"{query.get('key')}:{number}") == 1
        ):
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "0"}
            )
        if "delay" in query:
            await self._sleep_unless_stopping(float(query["delay"]))
        forever = "forever" in query
        end = start + size if forever else min(start + size, total)
        items = [{"id": i, **({"pad": "x" * pad} if pad else {})} for i in range(start, end)]
        more = forever or start + size < total
        following = request.rel_url.update_query({"page": str(number + 1)})
        if style == "link":
            headers = {}
            if more:
                last = request.rel_url.update_query({"page": "999"})
                headers["Link"] = f'<{last}>; rel="last", <{following}>; rel="next"'
            return web.json_response(items, headers=headers)
        if style == "next":
            target: str | None = None
            if more:
                if "relative" in query:
                    target = str(following)
                else:
                    host = query.get("next_host", request.url.host or HOST)
                    target = str(request.url.join(following).with_host(host))
            return web.json_response({"data": items, "next": target, "links": {"next": target}})
        if style == "cursor":
            cursor = f"c{start + size}" if more else None
            return web.json_response({"data": items, "meta": {"next_cursor": cursor}})
        return web.json_response({"data": items, "has_more": more})

    # -- helpers -----------------------------------------------------------------------------

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
