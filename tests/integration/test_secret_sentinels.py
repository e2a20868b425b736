"""No secret is ever persisted or shown: sentinels driven down every path, then looked for
in every form, everywhere (issue 9, item 1).

Each secret is a unique sentinel: an alphanumeric core, then characters that change under
URL-encoding, JSON escaping and HTML escaping (and, where the wire allows, ``é``), so that
each form it can take is a different string. The forms are computed here, independently of
``cardflow.redaction`` (which would otherwise hide its own bugs): raw; URL-encoded as
Python's quote/quote_plus and yarl (query values, paths) write it; JSON-escaped once and
twice; HTML-escaped; its UTF-8 read as latin-1; base64 (standard, URL-safe, with and
without padding) of its UTF-8 and latin-1 bytes; and its core, which catches a sentinel cut
in two and any text form not named here (for tokens: their first half). Basic credentials
are secrets of their own (base64 of ``user:password``, and of ``client_id:client_secret``
at token endpoints). Tokens the real Authlib provider issued and the flows' client tokens
are added after the fact.

Looked for: the whole database (SQLite's files as bytes, and every row of every table value
by value on both backends), every answer the server gave during the test (bodies and
headers; an answer may repeat what its caller sent in that request, nothing else), and
every log record cardflow's side of the process wrote, formatted as ``cardflow serve``
writes it (the loopback provider's and upstream's own logs are theirs).
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote, unquote_plus, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner
from yarl import URL

from cardflow import cli
from cardflow.app import Cardflow
from cardflow.logs import JsonFormatter
from tests.conftest import MASTER_KEY, RunningServer
from tests.integration.test_secrets_and_keys import _database_text
from tests.support.digest_server import DigestServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser
from tests.support.upstream import EchoRecord, Upstream

REDACTED = "[redacted]"
# What follows a sentinel's core: each character changes under some encoding.
TAIL = ' /+"\\=:@&<>'
# Logs that are not cardflow's: the loopback provider's and upstream's (they may log what
# they received) and the test's own HTTP client's (cardflow's outbound requests go through
# aiohttp, its server is uvicorn; httpx is only the test's client here).
NOT_OURS = (
    "authlib",
    "werkzeug",
    "flask",
    "aiohttp.access",
    "aiohttp.server",
    "aiohttp.web",
    "httpx",
    "httpcore",
)
EXCERPT = 1000  # bytes of an error body a card keeps (cards/api_connector.py)
FIRST_HALF = "its first half (cut in two)"
CORE = "its core (cut in two, or in a form not named here)"
PARTIAL = (FIRST_HALF, CORE)


def forms_of(value: str) -> dict[str, str]:
    """Every form ``value`` can take in text that comes back, by name (first name wins)."""
    found: dict[str, str] = {}

    def add(name: str, form: str) -> None:
        if len(form) >= 8 and form not in found.values():
            found[name] = form

    add("raw", value)
    add("URL-encoded (quote, safe='')", quote(value, safe=""))
    add("URL-encoded (quote)", quote(value))
    add("URL-encoded (quote_plus)", quote_plus(value))
    add("URL-encoded (quote_plus, safe='/')", quote_plus(value, safe="/"))
    query = URL("http://h/").with_query(q=value)
    add("URL-encoded (a yarl query value)", query.raw_query_string[2:])
    add("URL-encoded (a yarl query value, read back by aiohttp)", query.query_string[2:])
    add("URL-encoded (in a yarl path)", URL("http://h/").with_path("/" + value).raw_path[1:])
    once = json.dumps(value)[1:-1]
    add("JSON-escaped", once)
    add("JSON-escaped (non-ASCII kept)", json.dumps(value, ensure_ascii=False)[1:-1])
    add("JSON-escaped with \\/", once.replace("/", "\\/"))
    kept = json.dumps(value, ensure_ascii=False)[1:-1]
    add("JSON-escaped twice", json.dumps(once)[1:-1])
    add("JSON-escaped twice (non-ASCII kept)", json.dumps(kept, ensure_ascii=False)[1:-1])
    add("JSON-escaped twice (non-ASCII kept once)", json.dumps(kept)[1:-1])
    add("HTML-escaped", html.escape(value))
    add(
        "HTML-escaped (&#34;)",
        html.escape(value).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
    )
    mojibake = value.encode().decode("latin-1")
    add("its UTF-8 read as latin-1", mojibake)
    add("its UTF-8 read as latin-1, JSON-escaped", json.dumps(mojibake)[1:-1])
    for charset in ("utf-8", "latin-1"):
        try:
            data = value.encode(charset)
        except UnicodeEncodeError:
            continue
        for kind, encode in (
            ("base64", base64.b64encode),
            ("URL-safe base64", base64.urlsafe_b64encode),
        ):
            encoded = encode(data).decode("ascii")
            add(f"{kind} of its {charset}", encoded)
            add(f"{kind} of its {charset} without padding", encoded.rstrip("="))
    if len(value) >= 16:
        add(FIRST_HALF, value[: len(value) // 2])
    return found


def basic_credentials(user: str, password: str, charset: str = "utf-8") -> str:
    return base64.b64encode(f"{user}:{password}".encode(charset)).decode("ascii")


@dataclass
class Secret:
    label: str
    value: str
    # the sentinel's alphanumeric core: in any text form the secret may take
    core: str | None = None
    # sent by the caller: the answer to that very request may repeat it
    caller_sent: bool = False
    # the test's path carries it to the loopback upstream (checked there)
    reaches_upstream: bool = False
    forms: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.forms = forms_of(self.value)
        if self.core is not None:  # the core is the start of the sentinel's first half
            self.forms.pop(FIRST_HALF, None)
            self.forms[CORE] = self.core


@dataclass
class Place:
    """Somewhere a secret must not be: a database table or file, an answer, the logs."""

    where: str
    text: str
    # an answer to the caller who sent a secret may repeat it ("caller"); flows' answers
    # give their client token ("flows")
    may_hold: str = ""
    # what the caller sent (URL, headers, body), for "caller"
    request: str = ""

    def allows(self, secret: Secret) -> bool:
        if self.may_hold == "caller":
            return secret.caller_sent and any(f in self.request for f in secret.forms.values())
        if self.may_hold == "flows":
            return secret.label.startswith("client token")
        return False


class Kit:
    """One test's server, upstreams and secrets, and every answer the server gave."""

    def __init__(
        self,
        server: RunningServer,
        upstream: Upstream,
        oauth: OAuthServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.server = server
        self.upstream = upstream
        self.oauth = oauth
        self.caplog = caplog
        self.secrets: dict[str, Secret] = {}
        self.answers: list[Place] = []
        self.connection_ids: list[str] = []
        self.flows: list[dict[str, Any]] = []
        self.run_ids: list[str] = []
        self.upstream_seen_before = len(upstream.requests)
        self.api = self.client(headers=server.headers)

    # -- secrets -----------------------------------------------------------------------------

    def sentinel(
        self, label: str, *, ascii_only: bool = False, caller_sent: bool = False, upstream: bool
    ) -> str:
        tag = re.sub(r"[^a-z]", "", label.lower())[:6]
        core = f"SNTL{tag}{secrets.token_hex(5)}"
        value = core + TAIL + ("" if ascii_only else "é") + "q"
        self.add(label, value, core=core, caller_sent=caller_sent, upstream=upstream)
        forms = self.secrets[label].forms
        named = ("raw", "URL-encoded (quote)", "JSON-escaped", "base64 of its utf-8")
        assert len({forms[name] for name in named}) == len(named)  # each form differs
        return value

    def add(
        self,
        label: str,
        value: str,
        *,
        core: str | None = None,
        caller_sent: bool = False,
        upstream: bool = False,
    ) -> None:
        assert label not in self.secrets
        self.secrets[label] = Secret(label, value, core, caller_sent, upstream)

    # -- talking to the server ---------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            timeout=60,
            event_hooks={"response": [self._keep]},
            **kwargs,
        )

    def _keep(self, response: httpx.Response) -> None:
        url = response.request.url
        if f"{url.scheme}://{url.host}:{url.port}" != self.server.url:
            return  # the provider's pages (login, consent), not cardflow's
        response.read()
        path = url.path
        may_hold = ""
        if path.startswith(("/invoke/", "/api/v1/cards/")):
            may_hold = "caller"
        elif path.startswith("/api/v1/flows") and not path.endswith("/runs"):
            may_hold = "flows"
        request = response.request
        sent = [str(url), *(f"{k}: {v}" for k, v in request.headers.items())]
        sent.append(request.content.decode("utf-8", errors="replace"))
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        self.answers.append(
            Place(
                f"the answer to {request.method} {url.raw_path.decode()[:90]} "
                f"({response.status_code})",
                f"{headers}\n\n{response.text}",
                may_hold,
                "\n".join(sent),
            )
        )

    def connection(self, name: str, auth_type: str, config: dict[str, Any]) -> str:
        response = self.api.post(
            "/api/v1/connections",
            json={
                "name": f"{name} {secrets.token_hex(3)}",
                "auth_type": auth_type,
                "config": config,
            },
        )
        assert response.status_code == 201, response.text
        connection_id: str = response.json()["id"]
        self.connection_ids.append(connection_id)
        return connection_id

    def oauth_client(self, client_id: str, secret: str, method: str) -> None:
        self.oauth.add_client(
            client_id,
            secret,
            method,
            scope="read write",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(f"{self.server.url}/oauth/callback",),
        )

    def card_test(
        self, connection: str | None, url: str, inputs: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"connection": connection, "inputs": {"url": url, **(inputs or {})}, **extra}
        response = self.api.post("/api/v1/cards/api_connector.get/test", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        if result.get("run_id"):
            self.run_ids.append(result["run_id"])
        return result

    def flow(self, document: dict[str, Any]) -> dict[str, Any]:
        response = self.api.post("/api/v1/flows", json=document)
        assert response.status_code == 201, response.text
        flow: dict[str, Any] = response.json()
        self.flows.append(flow)
        if flow.get("client_token"):
            self.add(f"client token of {flow['name']}", flow["client_token"])
        return flow

    def wait_for_run(self, run_id: str) -> dict[str, Any]:
        self.run_ids.append(run_id)
        deadline = time.monotonic() + 30
        while True:
            response = self.api.get(f"/api/v1/runs/{run_id}")
            if response.status_code == 200 and response.json()["status"] not in (
                "queued",
                "running",
            ):
                run: dict[str, Any] = response.json()
                return run
            assert time.monotonic() < deadline, response.text
            time.sleep(0.05)

    def upstream_requests(self, path: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.upstream.requests[self.upstream_seen_before :]
            if r["path"].startswith(path)
        ]

    # -- the search --------------------------------------------------------------------------

    def assert_nothing_leaked(self) -> None:
        """Read back everything (so it is among the answers), then look everywhere."""
        for run_id in self.run_ids:
            self.api.get(f"/api/v1/runs/{run_id}")
        self.api.get("/api/v1/runs", params={"limit": 200})
        self.api.get("/api/v1/connections")
        for connection_id in self.connection_ids:
            self.api.get(f"/api/v1/connections/{connection_id}")
        for flow in self.flows:
            self.api.get(f"/api/v1/flows/{flow['id']}")
        for token in self.oauth.issued_tokens:
            self.add(f"access token …{token[-4:]}", token)
        for token in self.oauth.issued_refresh_tokens:
            self.add(f"refresh token …{token[-4:]}", token)
        self._assert_paths_carried_the_sentinels()
        places = [*self.answers, *database_places(self.server.cf), self._log_place()]
        leaks = [leak for place in places for leak in find_leaks(place, self.secrets.values())]
        assert not leaks, f"{len(leaks)} secret(s) leaked:\n" + "\n".join(leaks)

    def _assert_paths_carried_the_sentinels(self) -> None:
        """Each sentinel meant to reach the upstream did (the path really carried it), and
        the search below finds it there: the test can fail."""
        sent = "\n".join(
            _request_text(r) for r in self.upstream.requests[self.upstream_seen_before :]
        )
        for secret in self.secrets.values():
            if secret.reaches_upstream:
                whole = [f for n, f in secret.forms.items() if n not in PARTIAL]
                assert any(f in sent for f in whole), f"{secret.label} never reached the upstream"

    def _log_place(self) -> Place:
        formatter = JsonFormatter()
        records = [r for r in self.caplog.records if not r.name.startswith(NOT_OURS)]
        assert any(r.name.startswith("cardflow") for r in records)  # logs were captured
        return Place("the server's log", "\n".join(formatter.format(r) for r in records))


def _request_text(record: EchoRecord) -> str:
    body = record["body"]
    parts = [record["raw_path"], unquote(record["raw_path"]), body, unquote_plus(body)]
    parts.extend(value for _, value in record["headers"])
    return "\n".join(parts)


def find_leaks(place: Place, candidates: Any) -> list[str]:
    leaks: list[str] = []
    for secret in candidates:
        if place.allows(secret):
            continue
        for name, form in secret.forms.items():
            at = place.text.find(form)
            if at < 0:
                continue
            context = place.text[max(0, at - 60) : at + len(form) + 30]
            leaks.append(f"- {secret.label!r} as {name} in {place.where}: …{context!r}…")
            break  # one form per secret and place says enough
    return leaks


def database_places(cf: Cardflow) -> list[Place]:
    """Every value of every row of every table and, for SQLite, the files themselves (WAL
    and freed pages included)."""
    places: list[Place] = []
    with cf.db.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        for table in tables:
            values: list[str] = []
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    values.extend(_leaves(value))
            places.append(Place(f"the database table {table}", "\n".join(values)))
    if cf.db.is_sqlite:
        # the files as they are on disk (overflow pages may split a long value: the rows
        # above cover that); _database_text disposes of the pool first
        files = _database_text(cf)
        assert files  # the database files were found
        places.append(
            Place("the SQLite database files", files.decode("utf-8", errors="surrogateescape"))
        )
    return places


def _leaves(value: Any) -> Iterator[str]:
    """A stored value's texts: JSON values key by key and leaf by leaf, as they are."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, bytes | memoryview):
        yield bytes(value).decode("utf-8", errors="surrogateescape")
    elif isinstance(value, str):
        yield value
        if value[:1] in "{[":  # JSON kept as text
            try:
                parsed = json.loads(value)
            except ValueError:
                return
            yield from _leaves(parsed)
    elif value is not None:
        yield str(value)


@pytest.fixture
def kit(
    server: RunningServer,
    upstream: Upstream,
    oauth_server: OAuthServer,
    captured_logs: pytest.LogCaptureFixture,
) -> Iterator[Kit]:
    kit = Kit(server, upstream, oauth_server, captured_logs)
    try:
        yield kit
    finally:
        kit.api.close()


def _redacted_somewhere(value: Any) -> bool:
    return REDACTED in json.dumps(value, ensure_ascii=False)


# -- 1. Test this card against an upstream that answers 401 repeating the request --------------


def test_card_tests_against_a_401_echo_show_and_keep_no_credential(
    kit: Kit, upstream: Upstream, oauth_server: OAuthServer
) -> None:
    password = kit.sentinel("Basic password", upstream=False)
    kit.add(
        "Basic credentials (base64 of user:password)",
        basic_credentials("svc-usr", password),
        upstream=True,
    )
    header_value = kit.sentinel("Custom Header value", upstream=True)
    cc_basic_secret = kit.sentinel(
        "client_secret (client_secret_basic)", ascii_only=True, upstream=False
    )
    cc_post_secret = kit.sentinel(
        "client_secret (client_secret_post)", ascii_only=True, upstream=False
    )
    oauth_secret = kit.sentinel("OAuth client_secret", ascii_only=True, upstream=False)
    trigger_password = kit.sentinel("trigger password (card test)", caller_sent=True, upstream=True)

    basic = kit.connection("Basic", "basic", {"username": "svc-usr", "password": password})
    custom = kit.connection(
        "Custom", "custom", {"header_name": "X-Service-Key", "header_value": header_value}
    )
    oauth_server.add_client("cc-basic-app", cc_basic_secret, "client_secret_basic")
    oauth_server.add_client("cc-post-app", cc_post_secret, "client_secret_post")
    cc_basic = kit.connection(
        "CC basic",
        "client_credentials",
        {
            "token_url": oauth_server.token_url,
            "client_id": "cc-basic-app",
            "client_secret": cc_basic_secret,
            "token_auth_method": "client_secret_basic",
        },
    )
    cc_post = kit.connection(
        "CC post",
        "client_credentials",
        {
            "token_url": oauth_server.token_url,
            "client_id": "cc-post-app",
            "client_secret": cc_post_secret,
            "token_auth_method": "client_secret_post",
        },
    )
    kit.oauth_client("oauth-app", oauth_secret, "client_secret_basic")
    oauth = kit.connection(
        "OAuth",
        "oauth",
        {
            "authorize_url": oauth_server.authorize_url,
            "token_url": oauth_server.token_url,
            "client_id": "oauth-app",
            "client_secret": oauth_secret,
            "scope": "read write",
        },
    )
    page = authorize_in_browser(kit.api, f"/api/v1/connections/{oauth}/authorize")
    assert page.status_code == 200, page.text
    assert kit.api.get(f"/api/v1/connections/{oauth}").json()["status"] == "ready"

    for connection in (basic, custom, cc_basic, cc_post, oauth):
        result = kit.card_test(connection, f"{upstream.url}/reflect?status=401")
        assert not result["ok"]
        error = result["error"]
        assert error["status_code"] == 401, error
        # the echo came back, in the body and in the headers, and was blanked out
        assert REDACTED in error["body_excerpt"], error
        assert any(REDACTED in value for value in error["headers"].values()), error
    # token connections retried once with a fresh token, and both were echoed
    assert len(oauth_server.issued_tokens) >= 5

    # a 401 whose text body puts a credential astride the excerpt's cut
    for connection, header, value in (
        (custom, "X-Service-Key", header_value),
        (basic, "Authorization", "Basic " + basic_credentials("svc-usr", password)),
    ):
        pad = EXCERPT - len(value.encode()) * 2 // 3
        result = kit.card_test(
            connection, f"{upstream.url}/reflect?status=401&format=text&header={header}&pad={pad}"
        )
        assert result["error"]["status_code"] == 401, result
        assert result["error"]["body_excerpt"].startswith("x" * pad), result

    # the builder's test data: a password from the trigger goes out as a query parameter,
    # and in the URL's path
    context = {"trigger": {"body": {"password": trigger_password}}}
    for url, inputs in (
        (f"{upstream.url}/reflect?status=401", {"query": {"pw": "{{ trigger.body.password }}"}}),
        (f"{upstream.url}/reflect/{{{{ trigger.body.password }}}}?status=401", {}),
    ):
        result = kit.card_test(basic, url, inputs, context=context)
        assert result["error"]["status_code"] == 401, result
        assert REDACTED in result["error"]["body_excerpt"], result
    kit.assert_nothing_leaked()


# -- 2. A flow that copies an earlier card's outputs, with save_data ---------------------------


def _copying_flow(upstream: Upstream, refs: dict[str, str]) -> dict[str, Any]:
    reflect = f"{upstream.url}/reflect"
    return {
        "name": f"copy {secrets.token_hex(3)}",
        "trigger": {
            "type": "api_endpoint",
            "alias": f"copy-{secrets.token_hex(3)}",
            "security": "client_token",
        },
        "save_data": True,
        "cards": [
            {
                "id": "g",
                "card": "api_connector.get",
                "connection": refs["basic"],
                "inputs": {"url": reflect},
            },
            {
                "id": "h",
                "card": "api_connector.get",
                "connection": refs["custom"],
                "inputs": {"url": reflect},
            },
            {
                "id": "k",
                "card": "api_connector.get",
                "connection": refs["cc_basic"],
                "inputs": {"url": reflect},
            },
            {
                "id": "p",
                "card": "api_connector.post",
                "connection": refs["cc_post"],
                "inputs": {"url": reflect, "body": {"note": "{{ trigger.body.note }}"}},
            },
            {
                "id": "u",
                "card": "api_connector.get",
                "connection": refs["custom"],
                "on_error": "continue",
                "inputs": {"url": f"{reflect}?status=401"},
            },
            {
                "id": "t",
                "card": "api_connector.get",
                "inputs": {
                    "url": reflect,
                    "query": {"pw": "{{ trigger.body.password }}"},
                    "headers": {"X-Forwarded-Key": "{{ trigger.headers.\"x-api-key\" || '' }}"},
                },
            },
            {
                "id": "copy",
                "card": "object.construct",
                "inputs": {
                    "all": "{{ steps }}",
                    "headers": "{{ steps.g.headers }}",
                    "body": "{{ steps.g.body }}",
                    "failed": "{{ steps.u }}",
                },
            },
            {
                "id": "text",
                "card": "text.compose",
                "inputs": {"template": "g said {{ steps.g.body }}; h said {{ steps.h.headers }}"},
            },
            {"id": "str", "card": "json.stringify", "inputs": {"value": "{{ steps }}"}},
            {
                "id": "fwd",
                "card": "api_connector.post",
                "inputs": {
                    "url": f"{upstream.url}/echo",
                    "body": {"copied": "{{ steps.h }}", "text": "{{ steps.text }}"},
                },
            },
            {
                "id": "ret",
                "card": "flow.return",
                "inputs": {
                    "run": "{{ flow.run_id }}",
                    "steps": "{{ steps }}",
                    "caller": "{{ trigger.body }}",
                },
            },
        ],
    }


def test_flow_copying_outputs_keeps_and_answers_no_secret(
    kit: Kit, upstream: Upstream, oauth_server: OAuthServer
) -> None:
    password = kit.sentinel("Basic password", upstream=False)
    kit.add(
        "Basic credentials (base64 of user:password)",
        basic_credentials("svc-usr", password),
        upstream=True,
    )
    header_value = kit.sentinel("Custom Header value", upstream=True)
    cc_basic_secret = kit.sentinel(
        "client_secret (client_secret_basic)", ascii_only=True, upstream=False
    )
    cc_post_secret = kit.sentinel(
        "client_secret (client_secret_post)", ascii_only=True, upstream=False
    )
    caller_password = kit.sentinel("trigger body password", caller_sent=True, upstream=True)
    caller_key = kit.sentinel(
        "trigger X-Api-Key header", ascii_only=True, caller_sent=True, upstream=True
    )
    caller_auth = kit.sentinel(
        "trigger Authorization header", ascii_only=True, caller_sent=True, upstream=False
    )
    caller_query = kit.sentinel("trigger token query parameter", caller_sent=True, upstream=False)
    caller_nested = kit.sentinel("trigger nested client_secret", caller_sent=True, upstream=False)
    manual_password = kit.sentinel("manual run password", upstream=True)

    oauth_server.add_client("flow-basic-app", cc_basic_secret, "client_secret_basic")
    oauth_server.add_client("flow-post-app", cc_post_secret, "client_secret_post")
    refs = {
        "basic": kit.connection("Basic", "basic", {"username": "svc-usr", "password": password}),
        "custom": kit.connection(
            "Custom", "custom", {"header_name": "X-Service-Key", "header_value": header_value}
        ),
        "cc_basic": kit.connection(
            "CC basic",
            "client_credentials",
            {
                "token_url": oauth_server.token_url,
                "client_id": "flow-basic-app",
                "client_secret": cc_basic_secret,
                "token_auth_method": "client_secret_basic",
            },
        ),
        "cc_post": kit.connection(
            "CC post",
            "client_credentials",
            {
                "token_url": oauth_server.token_url,
                "client_id": "flow-post-app",
                "client_secret": cc_post_secret,
                "token_auth_method": "client_secret_post",
            },
        ),
    }
    flow = kit.flow(_copying_flow(upstream, refs))
    client_token = flow["client_token"]
    kit.secrets[f"client token of {flow['name']}"].caller_sent = True
    kit.secrets[f"client token of {flow['name']}"].reaches_upstream = True

    # invoked over HTTP: the caller's own secrets, the client token in the body as well
    answer = kit.api.post(
        f"/invoke/{flow['trigger']['alias']}",
        params={"token": caller_query},
        headers={
            "x-api-client-token": client_token,
            "Authorization": f"Bearer {caller_auth}",
            "X-Api-Key": caller_key,
        },
        json={
            "password": caller_password,
            "note": client_token,
            "nested": {"client_secret": caller_nested},
        },
    )
    assert answer.status_code == 200, answer.text
    assert REDACTED in answer.text  # the upstream's echo of the credentials, blanked
    run = kit.wait_for_run(answer.json()["run"])
    assert run["status"] == "succeeded", run
    assert [card["id"] for card in run["cards"]][:4] == ["g", "h", "k", "p"]
    assert _redacted_somewhere(run["cards"][6]["outputs"])  # the copy, blanked where it held one
    assert run["cards"][2]["outputs"]["status_code"] == 200  # the rest is kept

    # a form-encoded body: its fields named like secrets are kept out as JSON ones are
    form_password = kit.sentinel("trigger form password", caller_sent=True, upstream=False)
    form_answer = kit.api.post(
        f"/invoke/{flow['trigger']['alias']}",
        headers={"x-api-client-token": client_token},
        data={"password": form_password, "note": "form"},
    )
    assert form_answer.status_code == 200, form_answer.text
    form_run = kit.wait_for_run(form_answer.json()["run"])
    assert form_run["status"] == "succeeded", form_run
    assert "note=form" in json.dumps(form_run["trigger_data"])  # the rest of the form is kept

    # run manually (the answer is the run as stored)
    manual = kit.api.post(
        f"/api/v1/flows/{flow['id']}/runs",
        json={"inputs": {"password": manual_password, "note": "manual"}},
    )
    assert manual.status_code == 201, manual.text
    kit.run_ids.append(manual.json()["id"])
    assert manual.json()["status"] == "succeeded", manual.text

    # a public flow that relays an echo's headers and body to its caller (Return Raw)
    relay = kit.flow(
        {
            "name": f"relay {secrets.token_hex(3)}",
            "trigger": {
                "type": "api_endpoint",
                "alias": f"relay-{secrets.token_hex(3)}",
                "security": "none",
            },
            "save_data": True,
            "cards": [
                {
                    "id": "h",
                    "card": "api_connector.get",
                    "connection": refs["custom"],
                    "inputs": {"url": f"{upstream.url}/reflect"},
                },
                {
                    "id": "g",
                    "card": "api_connector.get",
                    "connection": refs["basic"],
                    "inputs": {"url": f"{upstream.url}/reflect"},
                },
                {
                    "id": "raw",
                    "card": "flow.return_raw",
                    "inputs": {"headers": "{{ steps.h.headers }}", "body": "g: {{ steps.g.body }}"},
                },
            ],
        }
    )
    relayed = kit.api.get(f"/invoke/{relay['trigger']['alias']}")
    assert relayed.status_code == 200, relayed.text
    assert REDACTED in relayed.text
    assert any(REDACTED in value for value in relayed.headers.values())
    kit.assert_nothing_leaked()


# -- 3. Client credentials against a token endpoint that repeats what it received --------------


def test_token_endpoint_echo_reaches_no_error_record_or_connection(
    kit: Kit, upstream: Upstream
) -> None:
    cases = (
        ("client_secret_basic", "invalid_client", 400),
        ("client_secret_post", "invalid_client", 401),
        ("client_secret_basic", "invalid_grant", 400),
    )
    refs: list[str] = []
    for n, (method, error, status) in enumerate(cases):
        client_id = f"echo-{n}-app"
        secret = kit.sentinel(
            f"client_secret {n} ({method}, {error})", upstream=method.endswith("post")
        )
        if method == "client_secret_basic":
            for charset in ("utf-8", "latin-1"):
                kit.add(
                    f"client {n} Basic credentials ({charset})",
                    basic_credentials(client_id, secret, charset),
                    upstream=charset == "latin-1",  # Authlib writes them as latin-1
                )
        token_url = f"{upstream.url}/token-echo?{urlencode({'error': error, 'status': status})}"
        refs.append(
            kit.connection(
                f"CC echo {n}",
                "client_credentials",
                {
                    "token_url": token_url,
                    "client_id": client_id,
                    "client_secret": secret,
                    "token_auth_method": method,
                },
            )
        )
    for ref in refs:
        result = kit.card_test(ref, f"{upstream.url}/json")
        assert not result["ok"]
        assert REDACTED in result["error"]["message"], result  # the echo, blanked
        connection = kit.api.get(f"/api/v1/connections/{ref}").json()
        assert connection["status"] in ("error", "needs_authorization"), connection
        assert REDACTED in (connection["last_error"] or ""), connection
    assert len(kit.upstream_requests("/token-echo")) >= len(cases)
    assert len(kit.upstream_requests("/json")) == 0  # nothing went out without a token

    flow = kit.flow(
        {
            "name": f"cc echo {secrets.token_hex(3)}",
            "save_data": True,
            "cards": [
                {
                    "id": f"c{n}",
                    "card": "api_connector.get",
                    "connection": ref,
                    "on_error": "continue",
                    "inputs": {"url": f"{upstream.url}/json"},
                }
                for n, ref in enumerate(refs)
            ],
        }
    )
    manual = kit.api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}})
    assert manual.status_code == 201, manual.text
    kit.run_ids.append(manual.json()["id"])
    assert all(card["status"] == "failed" for card in manual.json()["cards"]), manual.text
    kit.assert_nothing_leaked()


# -- 4. The OAuth callback: a token exchange that echoes, a provider error that repeats ---------


def _callback_state(kit: Kit, connection_id: str) -> str:
    begun = kit.api.get(f"/api/v1/connections/{connection_id}/authorize", follow_redirects=False)
    assert begun.status_code == 302, begun.text
    return parse_qs(urlsplit(begun.headers["location"]).query)["state"][0]


def test_authorization_callback_page_shows_no_secret(
    kit: Kit, upstream: Upstream, oauth_server: OAuthServer
) -> None:
    browser = kit.client()  # no API token, no session: anyone may open the callback
    try:
        for n, (method, error) in enumerate(
            (("client_secret_basic", "invalid_client"), ("client_secret_post", "invalid_grant"))
        ):
            client_id = f"cb-{n}-app"
            secret = kit.sentinel(
                f"OAuth client_secret {n} ({method})", upstream=method.endswith("post")
            )
            if method == "client_secret_basic":
                kit.add(
                    f"OAuth client {n} Basic credentials",
                    basic_credentials(client_id, secret, "latin-1"),
                    upstream=True,
                )
            code = kit.sentinel(f"authorization code {n}", ascii_only=True, upstream=True)
            connection_id = kit.connection(
                f"OAuth callback {n}",
                "oauth",
                {
                    "authorize_url": oauth_server.authorize_url,
                    "token_url": f"{upstream.url}/token-echo?{urlencode({'error': error})}",
                    "client_id": client_id,
                    "client_secret": secret,
                    "token_auth_method": method,
                },
            )
            # the token exchange at the callback: the endpoint repeats what it received
            page = browser.get(
                "/oauth/callback",
                params={"state": _callback_state(kit, connection_id), "code": code},
            )
            assert page.status_code == 400, page.text
            assert "token exchange failed" in page.text
            assert REDACTED in page.text  # the echo, blanked (then escaped for HTML)

            # the provider's error, repeating the client secret in every form
            description = " ".join(
                (
                    secret,
                    quote(secret, safe=""),
                    json.dumps(secret)[1:-1],
                    basic_credentials(client_id, secret, "latin-1"),
                    basic_credentials(client_id, secret, "utf-8"),
                )
            )
            page = browser.get(
                "/oauth/callback",
                params={
                    "state": _callback_state(kit, connection_id),
                    "error": "access_denied",
                    "error_description": description,
                },
            )
            assert page.status_code == 400, page.text
            assert "access_denied" in page.text
            assert REDACTED in page.text
        assert len(kit.upstream_requests("/token-echo")) == 2
    finally:
        browser.close()
    kit.assert_nothing_leaked()


# -- 5. Refresh failures whose answer repeats the refresh token --------------------------------


def test_refresh_failure_echoing_the_refresh_token_is_redacted(
    kit: Kit, upstream: Upstream, oauth_server: OAuthServer
) -> None:
    refs: list[str] = []
    for n, (method, error, status) in enumerate(
        (
            ("client_secret_basic", "invalid_grant", 400),
            ("client_secret_post", "invalid_client", 401),
        )
    ):
        client_id = f"refresh-{n}-app"
        secret = kit.sentinel(
            f"OAuth client_secret {n} ({method})", ascii_only=True, upstream=method.endswith("post")
        )
        if method == "client_secret_basic":
            kit.add(
                f"OAuth client {n} Basic credentials",
                basic_credentials(client_id, secret),
                upstream=True,
            )
        kit.oauth_client(client_id, secret, method)
        # the code exchange and the first refresh reach the real provider; then the
        # endpoint refuses, repeating what it received (the refresh token among it)
        query = urlencode(
            {"to": oauth_server.token_url, "relay": 2, "error": error, "status": status}
        )
        connection_id = kit.connection(
            f"OAuth refresh {n}",
            "oauth",
            {
                "authorize_url": oauth_server.authorize_url,
                "token_url": f"{upstream.url}/token-relay/{secrets.token_hex(4)}?{query}",
                "client_id": client_id,
                "client_secret": secret,
                "token_auth_method": method,
                "scope": "read write",
            },
        )
        refs.append(connection_id)
        page = authorize_in_browser(kit.api, f"/api/v1/connections/{connection_id}/authorize")
        assert page.status_code == 200, page.text
        # a 401: refreshed at the provider (rotated), retried, 401 again
        first = kit.card_test(connection_id, f"{upstream.url}/reflect?status=401")
        assert first["error"]["status_code"] == 401, first
        # a 401 again: this refresh is refused, with the refresh token repeated
        second = kit.card_test(connection_id, f"{upstream.url}/reflect?status=401")
        assert not second["ok"]
        assert REDACTED in second["error"]["message"], second
        connection = kit.api.get(f"/api/v1/connections/{connection_id}").json()
        assert connection["status"] in ("error", "needs_authorization"), connection
        assert REDACTED in (connection["last_error"] or ""), connection
    refreshes = [
        r for r in kit.upstream_requests("/token-relay/") if "grant_type=refresh_token" in r["body"]
    ]
    assert len(refreshes) == 4
    refused = oauth_server.issued_refresh_tokens
    # the refused refreshes carried the newest refresh tokens, which the echo repeated
    assert any(token in r["body"] for r in refreshes for token in refused)
    kit.assert_nothing_leaked()


# -- 6. Bearer and query connections: the token and the key, as sent and as repeated ----------


def test_bearer_token_and_query_key_are_kept_out_of_everything(
    kit: Kit, upstream: Upstream
) -> None:
    token = kit.sentinel("Bearer token", ascii_only=True, upstream=True)
    key = kit.sentinel("query parameter key", upstream=True)
    bearer = kit.connection("Bearer", "bearer", {"token": token})
    query = kit.connection("Query", "query", {"param_name": "appid", "param_value": key})

    for connection in (bearer, query):
        result = kit.card_test(connection, f"{upstream.url}/reflect?status=401")
        assert result["error"]["status_code"] == 401, result
        assert REDACTED in result["error"]["body_excerpt"], result  # the echo, blanked
    # the card names the parameter too: the connection's key goes, and comes back blanked
    result = kit.card_test(query, f"{upstream.url}/reflect?appid=typed", {"query": {"appid": "x"}})
    assert result["ok"], result
    assert result["outputs"]["body"]["query"]["appid"] == [REDACTED]
    sent = [r["query"] for r in kit.upstream_requests("/reflect") if "appid" in r["query"]]
    assert sent[-1]["appid"] == [key]
    # a redirect on the origin whose Location repeats the key; one not followed (300)
    followed = kit.card_test(query, f"{upstream.url}/redirect?to=/reflect&echo=query")
    assert followed["ok"] and REDACTED in followed["outputs"]["body"]["raw_path"], followed
    shown = kit.card_test(query, f"{upstream.url}/redirect?code=300&echo=query")
    assert REDACTED in shown["error"]["headers"]["location"], shown

    # run history with save_data: outputs, errors and a copy of them kept, blanked
    reflect = f"{upstream.url}/reflect"
    flow = kit.flow(
        {
            "name": f"bearer and query {secrets.token_hex(3)}",
            "trigger": {"type": "manual"},
            "save_data": True,
            "cards": [
                {
                    "id": "b",
                    "card": "api_connector.get",
                    "connection": bearer,
                    "inputs": {"url": reflect},
                },
                {
                    "id": "q",
                    "card": "api_connector.get",
                    "connection": query,
                    "inputs": {"url": reflect, "query": {"appid": "mine", "page": 1}},
                },
                {
                    "id": "e",
                    "card": "api_connector.get",
                    "connection": query,
                    "on_error": "continue",
                    "inputs": {"url": f"{upstream.url}/redirect?code=300&echo=query"},
                },
                {
                    "id": "f",
                    "card": "api_connector.get",
                    "connection": query,
                    "on_error": "continue",
                    "inputs": {"url": f"{reflect}?status=500"},
                },
                {
                    "id": "copy",
                    "card": "text.compose",
                    "inputs": {"template": "{{ steps.q.body }} {{ steps.e.headers }}"},
                },
            ],
        }
    )
    manual = kit.api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}})
    assert manual.status_code == 201, manual.text
    run = manual.json()
    kit.run_ids.append(run["id"])
    cards = {card["id"]: card for card in run["cards"]}
    assert [cards[c]["status"] for c in ("b", "q", "copy")] == ["succeeded"] * 3, run
    assert cards["q"]["outputs"]["body"]["query"]["page"] == ["1"]  # the rest is kept
    for card in ("b", "q", "e", "copy"):
        assert _redacted_somewhere(cards[card]["outputs"]), cards[card]
    assert _redacted_somewhere(cards["f"]["error"]), cards["f"]  # the 500's echo, blanked
    kit.api.get("/metrics")
    kit.assert_nothing_leaked()


# -- 7. Digest connections: the password, and each answer's hash made with it -----------------


def test_digest_password_and_response_hashes_are_kept_out_of_everything(
    kit: Kit, settings_kwargs: dict[str, object]
) -> None:
    # never on the wire: only hashes of it are sent (the server has it to check them)
    password = kit.sentinel("Digest password", upstream=False)
    with DigestServer("ada", password) as digest:
        connection = kit.connection("Digest", "digest", {"username": "ada", "password": password})
        for algorithm in ("MD5", "SHA-256"):
            result = kit.card_test(connection, f"{digest.url}/hidden/{algorithm}")
            assert result["ok"] and result["outputs"]["body"]["authenticated"], result
        # the origin's kept challenge goes along to a page that echoes the request's headers
        echoed = kit.card_test(connection, f"{digest.url}/headers")
        answer = echoed["outputs"]["body"]["headers"]["Authorization"]
        assert answer.startswith('Digest username="ada"'), echoed
        assert f'response="{REDACTED}"' in answer, echoed  # the hash, the proof
        wrong = kit.connection("Digest wrong", "digest", {"username": "ada", "password": "nope"})
        refused = kit.card_test(wrong, f"{digest.url}/hidden/SHA-256")
        assert refused["error"]["status_code"] == 401, refused
        # Test connection: its answer (status, time, message) and the rejection it records
        for ref, algorithm, ok in ((connection, "MD5", True), (wrong, "SHA-256", False)):
            probe = {"test_request": {"url": f"{digest.url}/hidden/{algorithm}"}}
            kit.api.patch(f"/api/v1/connections/{ref}", json=probe).raise_for_status()
            tested = kit.api.post(f"/api/v1/connections/{ref}/test")
            assert tested.status_code == 200 and tested.json()["ok"] is ok, tested.text

        flow = kit.flow(
            {
                "name": f"digest {secrets.token_hex(3)}",
                "trigger": {"type": "manual"},
                "save_data": True,
                "cards": [
                    {
                        "id": "d",
                        "card": "api_connector.get",
                        "connection": connection,
                        "inputs": {"url": f"{digest.url}/hidden/SHA-256"},
                    },
                    {
                        "id": "h",
                        "card": "api_connector.get",
                        "connection": connection,
                        "inputs": {"url": f"{digest.url}/headers"},
                    },
                ],
            }
        )
        manual = kit.api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}})
        assert manual.status_code == 201, manual.text
        run = manual.json()
        kit.run_ids.append(run["id"])
        assert [card["status"] for card in run["cards"]] == ["succeeded"] * 2, run
        env = {"CARDFLOW_HOME": str(settings_kwargs["home"]), "CARDFLOW_MASTER_KEY": MASTER_KEY}
        if "database_url" in settings_kwargs:
            env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
        runner = CliRunner()
        for args in (
            ["connection", "show", connection, "--json"],
            ["connection", "list"],
            ["connection", "test", connection],
            ["connection", "test", connection, "--json"],
        ):
            shown = runner.invoke(cli.app, args, env={**env, "COLUMNS": "200"})
            assert shown.exit_code == 0, shown.output
            kit.answers.append(Place(f"cardflow {' '.join(args)}", shown.output))
        answers = [auth for _, auth in digest.requests if auth]
    assert len(answers) >= 5
    for n, sent in enumerate(answers):  # what proves the password, for its nonce
        kit.add(f"Digest response hash {n}", re.findall(r'response="([0-9a-f]+)"', sent)[0])

    kit.assert_nothing_leaked()
