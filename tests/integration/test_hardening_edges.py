"""Issue 9, items 3 (request-body cap), 4 (bad bytes and framing) and 5 (outbound policy and
files), driven through a real cardflow server and real loopback peers.

Raw sockets stand in for the clients and upstreams that misbehave: they show the bytes
cardflow really writes (framing), send the bytes a well-behaved client never would (lone
surrogates, invalid UTF-8, lying Content-Length) and answer what a well-behaved server never
would (non-UTF-8 header bytes). Every outbound target is on loopback; the addresses that
would not be (NAT64, 6to4, Teredo, metadata addresses) are only checked as pure functions.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import cardflow
from cardflow.errors import ConfigurationError
from cardflow.net.policy import NetworkPolicy, reachable_forms
from cardflow.settings import Settings
from tests.conftest import MASTER_KEY, RunningServer, free_port, serving
from tests.support.upstream import Upstream

KIB = 1024
CAP = 64 * KIB  # max_request_bytes of the capped server
LOOPBACK_DENIED = "127.0.0.0/8,::1/128"
ONLY_127_0_0_1_DENIED = "127.0.0.1/32,::1/128"  # 127.0.0.2 stays reachable for redirectors
REPLACEMENT = "\ufffd"


# -- loopback peers -----------------------------------------------------------------------


Reply = Callable[[bytes], bytes]


def _head_and_body(data: bytes) -> tuple[bytes, bytes] | None:
    """(head, body) once a whole request (Content-Length framing) is in ``data``."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, body = data[:end], data[end + 4 :]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return (head, body) if len(body) >= length else None


class RawServer:
    """A loopback TCP server in a thread: it records every connection it accepts and the
    request read from it, and writes back ``reply(request)`` byte for byte, then closes.

    Bound to each of ``hosts`` on one port (127.0.0.1 and ::1 together let one server
    stand for "anything on this host", whichever family a URL reaches it by)."""

    def __init__(self, reply: Reply, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.reply = reply
        self.hosts = hosts
        self.requests: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.port = 0

    def __enter__(self) -> RawServer:
        for _attempt in range(20):
            try:
                self._listeners = self._bind_all()
                break
            except OSError:
                for sock in self._listeners:
                    sock.close()
                self._listeners = []
        else:
            raise RuntimeError(f"no port free on all of {self.hosts}")
        for sock in self._listeners:
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._listeners:
            sock.close()

    def _bind_all(self) -> list[socket.socket]:
        listeners: list[socket.socket] = []
        port = 0
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            listeners.append(sock)
            sock.bind((host, port))
            sock.listen(64)
            sock.settimeout(0.05)
            port = sock.getsockname()[1]
        self.port = port
        return listeners

    def url(self, host: str | None = None) -> str:
        host = host or self.hosts[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def seen(self) -> int:
        with self._lock:
            return self.connections

    def _serve(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while _head_and_body(data) is None:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            with self._lock:
                self.requests.append(data)
            with suppress(OSError):
                conn.sendall(self.reply(data))


def http_response(status: int, headers: list[tuple[str, bytes | str]], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever\r\n".encode()]
    for name, value in headers:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode() + b": " + raw + b"\r\n")
    return b"".join(lines) + b"\r\n" + body


def ok_reply(_request: bytes) -> bytes:
    return http_response(
        200,
        [("Content-Type", "text/plain"), ("Content-Length", "8"), ("Connection", "close")],
        b"sentinel",
    )


# -- a raw HTTP client ----------------------------------------------------------------------


@dataclass
class RawAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    framing: str  # "content-length", "chunked" or "close"

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    """(body, what follows the chunked body)."""
    body = bytearray()
    while True:
        line_end = data.index(b"\r\n")
        size = int(data[:line_end].split(b";")[0], 16)
        data = data[line_end + 2 :]
        if size == 0:
            trailer_end = data.index(b"\r\n")
            while trailer_end != 0:  # skip trailer fields
                data = data[trailer_end + 2 :]
                trailer_end = data.index(b"\r\n")
            return bytes(body), data[2:]
        body += data[:size]
        assert data[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        data = data[size + 2 :]


def parse_answers(data: bytes) -> list[RawAnswer]:
    """Every HTTP/1.1 response in ``data``, framed exactly as RFC 9112 says a client must."""
    answers: list[RawAnswer] = []
    while data:
        end = data.index(b"\r\n\r\n")
        head, data = data[:end].decode("latin-1"), data[end + 4 :]
        status_line, *lines = head.split("\r\n")
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        names = [name for name, _ in headers]
        chunked = "transfer-encoding" in names
        declared = [value for name, value in headers if name == "content-length"]
        if chunked:
            body, data = _dechunk(data)
            framing = "chunked"
        elif declared:
            length = int(declared[0])
            assert len(data) >= length, f"Content-Length {length} but {len(data)} bytes came"
            body, data = data[:length], data[length:]
            framing = "content-length"
        else:
            body, data, framing = data, b"", "close"
        answers.append(RawAnswer(int(status_line.split()[1]), headers, body, framing))
    return answers


def exchange(port: int, head: bytes, chunks: Iterable[bytes] = (), *, timeout: float = 30) -> bytes:
    """Send a request head and then body chunks, stopping as soon as the server answers
    (it may refuse a body before taking all of it), and read until the server closes."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed while we were sending
                break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return bytes(received)


def request_head(
    method: str, path: str, headers: dict[str, str] | None = None, *, close: bool = True
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_request(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> RawAnswer:
    head = request_head(method, path, {**(headers or {}), "Content-Length": str(len(body))})
    (answer,) = parse_answers(exchange(port, head, [body]))
    return answer


def assert_error(answer: httpx.Response | RawAnswer, status: int, type_: str) -> dict[str, Any]:
    """The documented error shape: {"error": {"type", "message"[, "field"]}}."""
    text = answer.text if isinstance(answer, httpx.Response) else answer.body.decode()
    if isinstance(answer, httpx.Response):
        assert answer.status_code == status, text
    else:
        assert answer.status == status, text
    data = json.loads(text)
    assert set(data) == {"error"}, text
    error = data["error"]
    assert error["type"] == type_, text
    assert isinstance(error["message"], str) and error["message"], text
    assert set(error) <= {"type", "message", "field"}, text
    return dict(error)


# -- cardflow servers -----------------------------------------------------------------------


@contextmanager
def cardflow_server(home: Path, **settings: Any) -> Iterator[RunningServer]:
    port = free_port()
    kwargs: dict[str, Any] = {
        "home": home,
        "master_key": MASTER_KEY,
        "public_url": f"http://127.0.0.1:{port}",
        **settings,
    }
    with cardflow.open(**kwargs) as cf, serving(cf, port) as running:
        yield running


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    """SQLite servers with the settings these tests need, started once for the module."""
    configs: dict[str, dict[str, Any]] = {
        "loopback_denied": {"deny_networks": LOOPBACK_DENIED, "allow_networks": ""},
        "narrow": {"deny_networks": ONLY_127_0_0_1_DENIED, "allow_networks": ""},
        "open": {"deny_networks": "", "allow_networks": ""},
        "default": {},
        "capped": {"max_request_bytes": CAP},
    }
    with ExitStack() as stack:
        running = {
            name: stack.enter_context(
                cardflow_server(tmp_path_factory.mktemp(name) / "home", **settings)
            )
            for name, settings in configs.items()
        }
        yield running


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RawServer]:
    """A live service on 127.0.0.1 and ::1 (one port) that nothing may reach."""
    with RawServer(ok_reply, hosts=("127.0.0.1", "::1")) as server:
        yield server


def card_test(server: RunningServer, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    with api(server) as client:
        answer = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": inputs, "retry": {"count": 0}, **extra},
        )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def create_flow(server: RunningServer, document: dict[str, Any]) -> dict[str, Any]:
    with api(server) as client:
        answer = client.post("/api/v1/flows", json=document)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def endpoint_flow(alias: str, cards: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"flow {alias}",
        "trigger": {"type": "api_endpoint", "alias": alias, "security": "none"},
        "cards": cards,
        **extra,
    }


def unique(prefix: str) -> str:
    return f"{prefix}{os.urandom(4).hex()}"


# == 5. Outbound policy ======================================================================

# Every one of these reaches the sentinel (127.0.0.1 or ::1) when nothing is denied.
LOOPBACK_FORMS = [
    "0.0.0.0",
    "[::]",
    "[::ffff:0.0.0.0]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "127.0.0.1",
    "[::1]",
    "localhost",
]
# Legacy numeric forms a resolver would map onto 127.0.0.1 / 0.0.0.0: refused as invalid
# URLs (naming the field, saying how to write the address) before anything else.
ODD_NUMERIC_FORMS = ["127.1", "0", "2130706433", "0x7f000001", "127.0.0.1.", "0177.0.0.1"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_any_address_form_is_refused_before_connecting(
    servers: dict[str, RunningServer], sentinel: RawServer, host: str
) -> None:
    before = sentinel.seen
    result = card_test(servers["loopback_denied"], {"url": f"http://{host}:{sentinel.port}/secret"})
    assert result["ok"] is False
    assert result["error"]["type"] == "network_denied", result
    assert "CARDFLOW_DENY_NETWORKS" in result["error"]["message"]
    assert sentinel.seen == before, "the denied request reached the loopback service"
    # the card test is on record, and the record lists
    with api(servers["loopback_denied"]) as client:
        run = client.get(f"/api/v1/runs/{result['run_id']}")
    assert run.status_code == 200
    assert run.json()["cards"][0]["error"]["type"] == result["error"]["type"]


@pytest.mark.parametrize("host", ODD_NUMERIC_FORMS)
def test_legacy_numeric_ipv4_forms_are_invalid_urls(
    servers: dict[str, RunningServer], sentinel: RawServer, host: str
) -> None:
    before = sentinel.seen
    with api(servers["open"]) as client:
        answer = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": {"url": f"http://{host}:{sentinel.port}/secret"}},
        )
    assert_error(answer, 422, "invalid_input")
    error = answer.json()["error"]
    assert error["field"] == "inputs.url", error
    assert "four decimal numbers" in error["message"] or "not a valid" in error["message"]
    assert sentinel.seen == before


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]", "[::ffff:127.0.0.1]"])
def test_control_the_same_forms_reach_the_sentinel_when_nothing_is_denied(
    servers: dict[str, RunningServer], sentinel: RawServer, host: str
) -> None:
    """Shows that the refusals above are the policy's doing: unrefused, each URL connects."""
    before = sentinel.seen
    result = card_test(servers["open"], {"url": f"http://{host}:{sentinel.port}/secret"})
    assert result["ok"] is True, result
    assert result["outputs"]["body"] == "sentinel"
    assert sentinel.seen == before + 1


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]"])
def test_default_policy_refuses_the_unspecified_addresses(
    servers: dict[str, RunningServer], sentinel: RawServer, host: str
) -> None:
    before = sentinel.seen
    result = card_test(servers["default"], {"url": f"http://{host}:{sentinel.port}/"})
    assert result["ok"] is False
    assert result["error"]["type"] == "network_denied", result
    assert sentinel.seen == before


def _redirect_to(targets: dict[str, str]) -> Reply:
    """Answers /r/<code>/<key> with that redirect to targets[key]; anything else 200."""

    def reply(request: bytes) -> bytes:
        target = request.split(b" ", 2)[1].decode()
        parts = target.split("/")
        if len(parts) == 4 and parts[1] == "r":
            location = targets[parts[3]]
            return http_response(
                int(parts[2]),
                [("Location", location), ("Content-Length", "0"), ("Connection", "close")],
            )
        return http_response(
            200,
            [("Content-Type", "text/plain"), ("Content-Length", "5"), ("Connection", "close")],
            b"final",
        )

    return reply


@pytest.fixture(scope="module")
def redirector(sentinel: RawServer) -> Iterator[RawServer]:
    """On 127.0.0.2 (allowed by the narrow policy): redirects to the sentinel by every
    form that reaches 127.0.0.1 or ::1, or to itself."""
    targets: dict[str, str] = {
        "unspecified4": f"http://0.0.0.0:{sentinel.port}/secret",
        "unspecified6": f"http://[::]:{sentinel.port}/secret",
        "mapped": f"http://[::ffff:127.0.0.1]:{sentinel.port}/secret",
        "mapped0": f"http://[::ffff:0.0.0.0]:{sentinel.port}/secret",
    }
    server = RawServer(_redirect_to(targets), hosts=("127.0.0.2",))
    with server:
        targets["self"] = f"{server.url()}/final"
        yield server


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["unspecified4", "unspecified6", "mapped", "mapped0"])
def test_redirect_to_loopback_in_any_form_is_refused(
    servers: dict[str, RunningServer],
    sentinel: RawServer,
    redirector: RawServer,
    code: int,
    target: str,
) -> None:
    before, asked = sentinel.seen, redirector.seen
    result = card_test(servers["narrow"], {"url": f"{redirector.url()}/r/{code}/{target}"})
    assert redirector.seen == asked + 1  # the first hop was allowed and answered
    assert result["ok"] is False
    assert result["error"]["type"] == "network_denied", result
    assert sentinel.seen == before, "the redirect reached the loopback service"


@pytest.mark.parametrize("code", [301, 307])
def test_control_allowed_redirects_are_followed(
    servers: dict[str, RunningServer], redirector: RawServer, code: int
) -> None:
    asked = redirector.seen
    result = card_test(servers["narrow"], {"url": f"{redirector.url()}/r/{code}/self"})
    assert result["ok"] is True, result
    assert result["outputs"]["body"] == "final"
    assert redirector.seen == asked + 2


@pytest.mark.parametrize(
    "token_url",
    [
        "http://0.0.0.0:{port}/token",
        "http://[::]:{port}/token",
        "http://[::ffff:127.0.0.1]:{port}/token",
        "http://[::ffff:0.0.0.0]:{port}/token",
        "{redirector}/r/307/unspecified4",
        "{redirector}/r/308/mapped",
    ],
)
def test_token_url_reaching_loopback_is_refused_and_nothing_is_sent(
    servers: dict[str, RunningServer],
    sentinel: RawServer,
    redirector: RawServer,
    token_url: str,
) -> None:
    server = servers["narrow"]
    url = token_url.format(port=sentinel.port, redirector=redirector.url())
    name = unique("cc-")
    with api(server) as client:
        created = client.post(
            "/api/v1/connections",
            json={
                "name": name,
                "auth_type": "client_credentials",
                "config": {
                    "token_url": url,
                    "client_id": "svc",
                    "client_secret": "s3cret-not-for-loopback",
                },
            },
        )
    assert created.status_code == 201, created.text
    before, asked = sentinel.seen, redirector.seen
    result = card_test(server, {"url": f"{redirector.url()}/api"}, connection=name)
    assert result["ok"] is False
    if url.startswith(redirector.url()):
        # a token endpoint's redirect is either followed (and refused) or not followed at
        # all (the token request fails, saying so): both keep the secret off loopback
        assert result["error"]["type"] in {"network_denied", "token_request_failed"}, result
        if result["error"]["type"] == "token_request_failed":
            assert "30" in result["error"]["message"], result
    else:
        assert result["error"]["type"] == "network_denied", result
    assert sentinel.seen == before, "the token request reached the loopback service"
    # the card's own request never went out without its token; only a redirecting token
    # URL's first hop reached the redirector
    assert redirector.seen == asked + (1 if url.startswith(redirector.url()) else 0)
    assert all(b"/api" not in request.split(b"\r\n")[0] for request in redirector.requests)


def test_embedded_ipv4_forms_are_checked_as_that_address() -> None:
    """NAT64, 6to4, Teredo and IPv4-compatible forms would leave this host if the check
    failed, so they are shown on the policy itself, never by sending to them."""
    policy = NetworkPolicy(Settings(deny_networks=LOOPBACK_DENIED, allow_networks="").deny_networks)
    loopback_v4 = ipaddress.IPv4Address("127.0.0.1")
    teredo = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe")  # client 127.0.0.1
    for text in [
        "64:ff9b::7f00:1",  # NAT64 well-known prefix
        "2002:7f00:1::",  # 6to4
        str(teredo),
        "::7f00:1",  # IPv4-compatible
        "::ffff:7f00:1",  # IPv4-mapped
        "::ffff:0.0.0.0",
        "::",
        "0.0.0.0",
        "0.1.2.3",  # 0.0.0.0/8 reaches this host too
    ]:
        address = ipaddress.ip_address(text)
        assert not policy.is_allowed(address), text
        assert loopback_v4 in reachable_forms(address) or ipaddress.IPv6Address(
            "::1"
        ) in reachable_forms(address), text
    # addresses that embed nothing denied stay allowed
    for text in ["192.0.2.1", "2001:db8::1", "64:ff9b::c000:201", "::ffff:192.0.2.1"]:
        assert policy.is_allowed(ipaddress.ip_address(text)), text


def test_default_deny_list_covers_metadata_and_unspecified_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARDFLOW_DENY_NETWORKS", raising=False)
    monkeypatch.delenv("CARDFLOW_ALLOW_NETWORKS", raising=False)
    settings = Settings()
    denied = set(settings.deny_networks)
    for cidr in [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "0.0.0.0/32",
        "::/128",
    ]:
        assert ipaddress.ip_network(cidr) in denied, cidr
    policy = NetworkPolicy(settings.deny_networks, settings.allow_networks)
    for text in [
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "fe80::1",
        "::ffff:169.254.169.254",  # the metadata address, IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # ... and through NAT64
        "0.0.0.0",
        "::",
    ]:
        assert not policy.is_allowed(ipaddress.ip_address(text)), text
    assert policy.is_allowed(ipaddress.ip_address("192.0.2.1"))


# == 5. Files ================================================================================


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def permissive_umask() -> Iterator[None]:
    """umask 000: files get exactly the mode cardflow asks for, so 0600 is its doing."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _write_some(cf: Any) -> None:
    for index in range(3):
        cf.connections.create(f"c{index}", "basic", {"username": "u", "password": "p"})


def test_new_home_and_database_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with permissive_umask(), cardflow.open(home=home) as cf:
        _write_some(cf)
        db = home / "cardflow.db"
        side = [home / "cardflow.db-wal", home / "cardflow.db-shm"]
        assert all(path.exists() for path in [db, *side]), sorted(os.listdir(home))
        assert _mode(home) == 0o700
        for path in [db, *side, home / "master.key"]:
            assert _mode(path) == 0o600, f"{path.name}: {_mode(path):o}"


def test_existing_open_home_and_database_files_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    with permissive_umask():
        with cardflow.open(home=home, master_key=MASTER_KEY) as cf:
            _write_some(cf)
        assert _mode(home) == 0o700
        # someone (a backup restore, a careless chmod) opens everything up again
        home.chmod(0o755)
        leftovers = [home / "cardflow.db", home / "cardflow.db-wal", home / "cardflow.db-journal"]
        for path in leftovers[1:]:
            path.touch(exist_ok=True)
        for path in leftovers:
            path.chmod(0o644)
        with cardflow.open(home=home, master_key=MASTER_KEY) as cf:
            cf.connections.create("again", "none", {})
            assert _mode(home) == 0o700
            for path in [*leftovers, home / "cardflow.db-shm"]:
                if path.exists():
                    assert _mode(path) == 0o600, f"{path.name}: {_mode(path):o}"
            assert (home / "cardflow.db-shm").exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with cardflow.open(home=home):
        pass
    key = home / "master.key"
    assert _mode(key) == 0o600
    key.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        cardflow.open(home=home)


# == 4. Header values ========================================================================

BAD_VALUES = {
    "SOH": "a\x01b",
    "DEL": "a\x7fb",
    "NUL": "a\x00b",
    "CRLF": "a\r\nX-Injected: 1",
    "LF": "a\nb",
    "CR": "a\rb",
    "ESC": "\x1b[31mred",
    "US": "a\x1fb",
}


@pytest.mark.parametrize("bad", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_control_characters_in_header_values_are_refused_naming_the_field(
    servers: dict[str, RunningServer], upstream: Upstream, bad: str
) -> None:
    server = servers["default"]
    name = unique("custom-")
    with api(server) as client:
        created = client.post(
            "/api/v1/connections",
            json={
                "name": name,
                "auth_type": "custom",
                "config": {"header_name": "X-Key", "header_value": bad},
            },
        )
        error = assert_error(created, 422, "invalid_input")
        assert error["field"] == "config.header_value"
        assert name not in [c["name"] for c in client.get("/api/v1/connections").json()]

        good = client.post(
            "/api/v1/connections",
            json={
                "name": name,
                "auth_type": "custom",
                "config": {"header_name": "X-Key", "header_value": "fine"},
            },
        )
        assert good.status_code == 201, good.text
        patched = client.patch(
            f"/api/v1/connections/{name}", json={"config": {"header_value": bad}}
        )
        error = assert_error(patched, 422, "invalid_input")
        assert error["field"] == "config.header_value"

        before = len(upstream.requests)
        tested = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": {"url": f"{upstream.url}/echo", "headers": {"X-Trace": bad}}},
        )
        error = assert_error(tested, 422, "invalid_input")
        assert error["field"] == "inputs.headers.X-Trace"
        assert len(upstream.requests) == before


def test_a_header_value_made_at_run_time_fails_the_card_as_invalid_input(
    servers: dict[str, RunningServer], upstream: Upstream
) -> None:
    server = servers["default"]
    alias = unique("hdr")
    create_flow(
        server,
        endpoint_flow(
            alias,
            [
                {
                    "id": "call",
                    "card": "api_connector.get",
                    "inputs": {
                        "url": f"{upstream.url}/echo",
                        "headers": {"X-From-Caller": "{{ trigger.body.v }}"},
                    },
                }
            ],
        ),
    )
    before = len(upstream.requests)
    answer = httpx.post(f"{server.url}/invoke/{alias}", json={"v": "a\x7fb"}, timeout=30)
    # a failed flow is documented as 500 {"run_id", "error"}: the card error is input's
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["error"]["type"] == "invalid_input"
    assert body["error"]["field"] == "inputs.headers.X-From-Caller"
    assert len(upstream.requests) == before
    with api(server) as client:
        run = client.get(f"/api/v1/runs/{body['run_id']}").json()
    assert run["cards"][0]["error"]["type"] == "invalid_input"


def test_tab_is_a_valid_header_value_character(
    servers: dict[str, RunningServer], upstream: Upstream
) -> None:
    server = servers["default"]
    name = unique("tab-")
    with api(server) as client:
        created = client.post(
            "/api/v1/connections",
            json={
                "name": name,
                "auth_type": "custom",
                "config": {"header_name": "X-Key", "header_value": "key\twith tab"},
            },
        )
        assert created.status_code == 201, created.text
        tested = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={
                "connection": name,
                "inputs": {"url": f"{upstream.url}/echo", "headers": {"X-Trace": "a\tb"}},
            },
        )
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
    sent = dict((k.lower(), v) for k, v in upstream.requests[-1]["headers"])
    assert sent["x-trace"] == "a\tb"
    assert sent["x-key"] == "key\twith tab"


# == 4. Framing ==============================================================================

# Each value is unique, so finding it in the answer means the flow's header went out.
FLOW_FRAMING_HEADERS = {
    "Transfer-Encoding": "chunked",
    "Content-Length": "999",
    "Connection": "x-flow-connection",
    "Keep-Alive": "timeout=777",
    "Upgrade": "flow-proto/9",
    "Trailer": "X-Flow-Trailer",
    "TE": "flow-te",
    "Proxy-Connection": "flow-proxy",
    "Content-Encoding": "gzip",
    "Host": "flow.example",
}


def assert_clean_framing(answer: RawAnswer, expected_body: bytes) -> None:
    names = [name for name, _ in answer.headers]
    assert not ("transfer-encoding" in names and "content-length" in names), answer.headers
    assert names.count("content-length") <= 1 and names.count("transfer-encoding") <= 1
    if answer.framing == "content-length":
        assert answer.values("content-length") == [str(len(expected_body))]
    assert answer.body == expected_body
    for name, value in FLOW_FRAMING_HEADERS.items():
        if name.lower() == "transfer-encoding":
            continue  # cardflow's server may chunk by itself; both at once is checked above
        assert value not in answer.values(name.lower()), (name, answer.headers)
    for name in ("keep-alive", "upgrade", "trailer", "te", "proxy-connection", "host"):
        assert name not in names, answer.headers
    assert "content-encoding" not in names


def _invoke_twice_on_one_connection(port: int, path: str, body: bytes) -> list[RawAnswer]:
    """Two requests on one keep-alive connection: if the first answer's framing were
    wrong, the second answer would not parse where it should."""
    length = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    first = request_head("POST", path, length, close=False) + body
    second = request_head("POST", path, length, close=True) + body
    answers = parse_answers(exchange(port, first + second))
    assert len(answers) == 2, answers
    return answers


@pytest.mark.parametrize("card", ["flow.return_raw", "api_connector.close"])
def test_framing_and_hop_by_hop_headers_set_by_a_flow_are_dropped(
    servers: dict[str, RunningServer], card: str
) -> None:
    server = servers["default"]
    alias = unique("frame")
    body_input: Any = "raw {{ trigger.body.x }}" if card == "flow.return_raw" else {"x": 1}
    create_flow(
        server,
        endpoint_flow(
            alias,
            [
                {
                    "id": "answer",
                    "card": card,
                    "inputs": {
                        "status_code": 200,
                        "headers": {**FLOW_FRAMING_HEADERS, "X-Kept": "kept"},
                        "body": body_input,
                    },
                }
            ],
            save_data=True,
        ),
    )
    expected = b"raw y" if card == "flow.return_raw" else b'{"x": 1}'
    answers = _invoke_twice_on_one_connection(port_of(server), f"/invoke/{alias}", b'{"x":"y"}')
    for answer in answers:
        assert answer.status == 200
        assert answer.values("x-kept") == ["kept"]  # other headers the flow set do go out
        assert_clean_framing(answer, expected)


def _chunked_upstream_reply(_request: bytes) -> bytes:
    return http_response(
        200,
        [
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=555, max=100"),
            ("Trailer", "X-Checksum"),
            ("X-Upstream", "relayed"),
        ],
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n",
    )


@pytest.mark.parametrize("card", ["flow.return_raw", "api_connector.close"])
def test_relaying_a_chunked_upstreams_headers_never_sends_both_framings(
    servers: dict[str, RunningServer], card: str
) -> None:
    server = servers["default"]
    alias = unique("relay")
    with RawServer(_chunked_upstream_reply) as chunked:
        create_flow(
            server,
            endpoint_flow(
                alias,
                [
                    {"id": "g", "card": "api_connector.get", "inputs": {"url": chunked.url()}},
                    {
                        "id": "answer",
                        "card": card,
                        "inputs": {
                            "headers": "{{ steps.g.headers }}",
                            "body": "{{ steps.g.body }}",
                        },
                    },
                ],
                save_data=True,
            ),
        )
        answers = _invoke_twice_on_one_connection(port_of(server), f"/invoke/{alias}", b"{}")
    expected = b"hello world"  # text, as both cards send a text body
    for answer in answers:
        assert answer.status == 200
        assert answer.values("x-upstream") == ["relayed"]
        assert_clean_framing(answer, expected)
        assert "timeout=555, max=100" not in answer.values("keep-alive")
        assert "x-checksum" not in answer.values("trailer")
    # the flow really asked to answer with the upstream's Transfer-Encoding
    with api(server) as client:
        runs = client.get("/api/v1/runs", params={"limit": 1}).json()
    relayed = runs[0]["cards"][1]["inputs"]["headers"]
    assert relayed["transfer-encoding"] == "chunked"


# == 4. Bad bytes ============================================================================

BAD_BODIES = {
    "escaped-surrogate": b'{"x": "\\ud800"}',
    "escaped-low-surrogate-in-key": b'{"x": "ok", "k\\udc00": "\\udfff"}',
    "invalid-utf8": b'{"x": "\xed\xa0\x80\xff"}',  # a UTF-8-encoded surrogate, a stray byte
    "invalid-utf8-text": b"x=\xff\xfe",
}


def _listed_run(server: RunningServer, run_id: str) -> dict[str, Any]:
    with api(server) as client:
        listed = client.get("/api/v1/runs", params={"limit": 500})
        one = client.get(f"/api/v1/runs/{run_id}")
    assert listed.status_code == 200, listed.text
    assert one.status_code == 200, one.text
    assert run_id in [run["id"] for run in listed.json()]
    assert not has_surrogate(listed.json()) and not has_surrogate(one.json())
    return dict(one.json())


def has_surrogate(value: Any) -> bool:
    """True if a lone surrogate is anywhere in a JSON value (keys too): a JSON answer
    can carry one as a \\udXXX escape, which json.loads turns back into one."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogate(item) for item in value)
    return False


@pytest.mark.parametrize("raw", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_bytes_to_a_saving_flow_are_replaced_and_runs_still_list(
    server: RunningServer, raw: bytes
) -> None:
    alias = unique("bytes")
    flow = create_flow(
        server,
        endpoint_flow(
            alias,
            [
                {
                    "id": "echo",
                    "card": "flow.return",
                    "inputs": {"body": "{{ trigger.body }}", "query": "{{ trigger.query }}"},
                }
            ],
            save_data=True,
        ),
    )
    # text that is not JSON goes as text (as JSON it is refused: 400, naming the body)
    is_json = raw.startswith(b"{")
    content_type = "application/json" if is_json else "text/plain"
    if not is_json:
        refused = raw_request(
            port_of(server), "POST", f"/invoke/{alias}", raw, {"Content-Type": "application/json"}
        )
        assert refused.status == 400, refused.body
        assert json.loads(refused.body)["error"]["field"] == "body"
    answer = raw_request(
        port_of(server),
        "POST",
        f"/invoke/{alias}?q=%ED%A0%80%FF",
        raw,
        {"Content-Type": content_type, "X-Odd": "caf\xe9 \xff"},
    )
    assert answer.status == 200, answer.body
    returned = answer.json()
    assert not has_surrogate(returned)
    assert REPLACEMENT in json.dumps(returned["body"], ensure_ascii=False)
    assert REPLACEMENT in returned["query"]["q"]
    # the run is on record and readable, whatever the caller sent
    with api(server) as client:
        runs = client.get("/api/v1/runs", params={"flow_id": flow["id"]})
    assert runs.status_code == 200, runs.text
    (listed,) = runs.json()
    run = _listed_run(server, listed["id"])
    assert run["status"] == "succeeded"
    assert run["cards"][0]["outputs"] == returned
    assert REPLACEMENT in json.dumps(run["trigger_data"]["body"], ensure_ascii=False)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\\ud800", "auth_type": "none"}',
        b'{"name": "ok\\udfff", "auth_type": "none"}',
        b'{"name": "\xff\xfe", "auth_type": "none"}',
    ],
    ids=["escaped-surrogate", "escaped-low-surrogate", "invalid-utf8"],
)
def test_bad_bytes_in_a_connection_name_never_break_the_api(
    server: RunningServer, raw: bytes
) -> None:
    with api(server) as client:
        created = client.post(
            "/api/v1/connections", content=raw, headers={"Content-Type": "application/json"}
        )
        assert created.status_code in {201, 400, 422}, created.text
        if created.status_code == 201:
            assert REPLACEMENT in created.json()["name"]
            assert client.get(f"/api/v1/connections/{created.json()['id']}").status_code == 200
        else:
            assert_error(created, created.status_code, created.json()["error"]["type"])
        listed = client.get("/api/v1/connections")
        assert listed.status_code == 200, listed.text
        flow = client.post(
            "/api/v1/flows",
            content=raw.replace(b'"auth_type": "none"', b'"cards": []'),
            headers={"Content-Type": "application/json"},
        )
        assert flow.status_code in {201, 400, 422}, flow.text
        assert client.get("/api/v1/flows").status_code == 200


def _bad_header_reply(value: bytes) -> Reply:
    def reply(_request: bytes) -> bytes:
        body = b"refused \xff\xfe here"
        return http_response(
            400,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Reason", value),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
            body,
        )

    return reply


@pytest.mark.parametrize(
    "value",
    [b"no \xff way \xed\xa0\x80", b"ctl\x01here"],
    ids=["invalid-utf8", "control-character"],
)
def test_non_utf8_bytes_in_an_upstreams_error_headers_never_break_run_history(
    server: RunningServer, value: bytes
) -> None:
    with RawServer(_bad_header_reply(value)) as bad:
        result = card_test(server, {"url": f"{bad.url()}/thing"})
        alias = unique("badhdr")
        create_flow(
            server,
            endpoint_flow(
                alias,
                [{"id": "g", "card": "api_connector.get", "inputs": {"url": bad.url()}}],
                save_data=True,
            ),
        )
        invoked = httpx.post(f"{server.url}/invoke/{alias}", json={}, timeout=30)
    assert bad.seen >= 2
    assert result["ok"] is False
    assert result["error"]["type"] in {"upstream_status", "connection_error"}, result
    if result["error"]["type"] == "upstream_status":
        assert result["error"]["status_code"] == 400
        if b"\xff" in value:
            assert REPLACEMENT in result["error"]["headers"]["x-reason"]
    assert invoked.status_code == 500, invoked.text  # a failed flow: {"run_id", "error"}
    flow_run = invoked.json()["run_id"]
    for run_id in (result["run_id"], flow_run):
        run = _listed_run(server, run_id)
        assert run["cards"][0]["error"]["type"] == result["error"]["type"]


# == 3/4. Nesting ============================================================================


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_bodies_are_refused_naming_the_limit(
    servers: dict[str, RunningServer], depth: int
) -> None:
    server = servers["default"]
    alias = unique("deep")
    create_flow(
        server,
        endpoint_flow(alias, [{"id": "r", "card": "flow.return", "inputs": {"n": 1}}]),
    )
    json_headers = {"Content-Type": "application/json"}
    with api(server) as client:
        for path in ["/api/v1/flows/import", "/api/v1/flows", "/api/v1/connections"]:
            for body in (_deep_json(depth), _deep_object(depth)):
                answer = client.post(path, content=body, headers=json_headers)
                error = assert_error(answer, 400, "invalid_body")
                assert "64 levels" in error["message"], error
                assert "CARDFLOW_MAX_NESTING_DEPTH" in error["message"]
        for body in (_deep_json(depth), _deep_object(depth)):
            for headers in (json_headers, {}):  # JSON by type, or by its first character
                answer = httpx.post(
                    f"{server.url}/invoke/{alias}", content=body, headers=headers, timeout=30
                )
                error = assert_error(answer, 400, "invalid_body")
                assert "CARDFLOW_MAX_NESTING_DEPTH" in error["message"]
        # flow files whose text nests deeply: JSON, YAML flow style, YAML block style
        texts = {
            "deep.json": "[" * depth + "]" * depth,
            "mapping.yaml": "#\n" + "{a: " * depth + "1" + "}" * depth,
            "block.yaml": "- " * depth + "x",
        }
        if depth < 100_000:  # PyYAML spends ~2 s on this one whatever the depth
            texts["deep.yaml"] = "[" * depth + "]" * depth
        for filename, text in texts.items():
            answer = client.post(
                "/api/v1/flows/import", json={"content": text, "filename": filename}
            )
            error = assert_error(answer, 422, "invalid_input")
            assert "nests" in error["message"] and "deep" in error["message"], error
        # still healthy, and a normal import works
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
        fine = client.post(
            "/api/v1/flows/import",
            json={"content": f"name: shallow {alias}\ncards: []\n", "filename": "ok.yaml"},
        )
        assert fine.status_code == 201, fine.text


def test_nesting_limit_is_the_setting_not_an_accident(servers: dict[str, RunningServer]) -> None:
    """Just within the limit is accepted; one level more is refused."""
    server = servers["default"]
    alias = unique("edge")
    create_flow(
        server,
        endpoint_flow(
            alias, [{"id": "r", "card": "flow.return", "inputs": {"b": "{{ trigger.body }}"}}]
        ),
    )
    within = httpx.post(
        f"{server.url}/invoke/{alias}",
        content=_deep_json(60),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert within.status_code == 200, within.text
    beyond = httpx.post(
        f"{server.url}/invoke/{alias}",
        content=_deep_json(65),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_error(beyond, 400, "invalid_body")


# == 3. Request-body cap =====================================================================


def _assert_too_large(
    answer: RawAnswer | httpx.Response,
    limit: int = CAP,
    which: str = "CARDFLOW_MAX_REQUEST_BYTES",
) -> None:
    error = assert_error(answer, 413, "payload_too_large")
    assert f"{limit:,}" in error["message"], error
    assert which in error["message"], error


def test_oversized_body_without_token_is_413_with_content_length(
    servers: dict[str, RunningServer],
) -> None:
    port = port_of(servers["capped"])
    body = b"x" * (16 * CAP)
    head = request_head(
        "POST",
        "/api/v1/connections",
        {"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    chunks = [body[i : i + 16 * KIB] for i in range(0, len(body), 16 * KIB)]
    (answer,) = parse_answers(exchange(port, head, chunks))
    _assert_too_large(answer)


def test_oversized_body_without_token_is_refused_unread_when_streamed_without_length(
    servers: dict[str, RunningServer],
) -> None:
    """No length to refuse it by: the missing token is (401), before any of it is read;
    with a token, the cap stops it as it streams in (413)."""
    port = port_of(servers["capped"])
    head = request_head(
        "POST",
        "/api/v1/connections",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    piece = b"y" * (8 * KIB)
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(64)] + [b"0\r\n\r\n"]
    (answer,) = parse_answers(exchange(port, head, chunks))
    assert_error(answer, 401, "unauthorized")
    with_token = request_head(
        "POST",
        "/api/v1/connections",
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {servers['capped'].token}",
        },
    )
    (answer,) = parse_answers(exchange(port, with_token, chunks))
    _assert_too_large(answer)


def test_a_declared_length_over_the_cap_is_refused_before_the_body_arrives(
    servers: dict[str, RunningServer],
) -> None:
    """Content-Length: 10 MiB, 1 KiB sent, then the client waits: 413 comes anyway."""
    port = port_of(servers["capped"])
    head = request_head(
        "POST",
        "/api/v1/connections",
        {"Content-Type": "application/json", "Content-Length": str(10 * 1024 * KIB)},
    )
    (answer,) = parse_answers(exchange(port, head, [b"z" * KIB], timeout=20))
    _assert_too_large(answer)


def test_a_small_content_length_with_a_chunked_body_is_refused_by_the_parser(
    servers: dict[str, RunningServer],
) -> None:
    """Content-Length and Transfer-Encoding together (request-smuggling shape): never
    reaches authentication nor the body parser."""
    port = port_of(servers["capped"])
    head = request_head(
        "POST",
        "/api/v1/connections",
        {
            "Content-Type": "application/json",
            "Content-Length": "10",
            "Transfer-Encoding": "chunked",
        },
    )
    piece = b"w" * (8 * KIB)
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(32)] + [b"0\r\n\r\n"]
    answers = parse_answers(exchange(port, head, chunks))
    assert answers and answers[0].status in {400, 413}, answers


def test_a_small_lying_content_length_reads_only_what_it_declares(
    servers: dict[str, RunningServer],
) -> None:
    """Content-Length: 100, then four times the cap: the request is the 100 bytes
    (authentication refuses it); the rest is never taken as part of it."""
    port = port_of(servers["capped"])
    declared = b'{"name": "lying", "auth_type": "none"}'.ljust(100)
    head = request_head(
        "POST", "/api/v1/connections", {"Content-Type": "application/json", "Content-Length": "100"}
    )
    rest = b"x" * (4 * CAP)
    chunks = [declared] + [rest[i : i + 16 * KIB] for i in range(0, len(rest), 16 * KIB)]
    answers = parse_answers(exchange(port, head, chunks))
    assert answers, "no answer"
    assert_error(answers[0], 401, "unauthorized")
    assert all(answer.status != 500 for answer in answers)
    assert httpx.get(f"{servers['capped'].url}/healthz", timeout=10).status_code == 200


def test_body_just_under_the_cap_without_token_is_401(servers: dict[str, RunningServer]) -> None:
    body = b'{"name": "' + b"n" * (CAP - 64) + b'", "auth_type": "none"}'
    assert len(body) < CAP
    answer = raw_request(
        port_of(servers["capped"]),
        "POST",
        "/api/v1/connections",
        body,
        {"Content-Type": "application/json"},
    )
    assert_error(answer, 401, "unauthorized")


def test_a_body_that_is_not_json_without_token_is_401(servers: dict[str, RunningServer]) -> None:
    answer = raw_request(
        port_of(servers["capped"]),
        "POST",
        "/api/v1/connections",
        b"x" * (CAP - 1),
        {"Content-Type": "application/json"},
    )
    assert_error(answer, 401, "unauthorized")


def test_oversized_body_with_a_token_is_413_not_422(servers: dict[str, RunningServer]) -> None:
    server = servers["capped"]
    with api(server) as client:
        answer = client.post(
            "/api/v1/connections",
            content=b"x" * (2 * CAP),
            headers={"Content-Type": "application/json"},
        )
        _assert_too_large(answer)
        streamed = client.post(
            "/api/v1/connections",
            content=iter([b"x" * (8 * KIB)] * 16),
            headers={"Content-Type": "application/json"},
        )
        _assert_too_large(streamed)


def test_oversized_invoke_body_is_413_and_starts_no_run(servers: dict[str, RunningServer]) -> None:
    server = servers["capped"]
    alias = unique("big")
    flow = create_flow(
        server, endpoint_flow(alias, [{"id": "r", "card": "flow.return", "inputs": {"n": 1}}])
    )
    answer = httpx.post(
        f"{server.url}/invoke/{alias}",
        content=b'{"x": "' + b"x" * (2 * CAP) + b'"}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    _assert_too_large(answer)
    with api(server) as client:
        assert client.get("/api/v1/runs", params={"flow_id": flow["id"]}).json() == []


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_login_form_over_its_cap_is_413(servers: dict[str, RunningServer], streamed: bool) -> None:
    """/login has its own 64 KiB cap, under the server's default 10 MiB one."""
    server = servers["default"]
    form = b"token=" + b"t" * (100 * KIB)
    content: bytes | Iterator[bytes] = (
        iter([form[i : i + 8 * KIB] for i in range(0, len(form), 8 * KIB)]) if streamed else form
    )
    answer = httpx.post(
        f"{server.url}/login",
        content=content,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    _assert_too_large(answer, 64 * KIB, "the web forms' limit")
    small = httpx.post(f"{server.url}/login", data={"token": "forged"}, timeout=30)
    assert small.status_code == 400  # read, and refused as a login link that does not work
