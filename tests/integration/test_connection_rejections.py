"""A connection remembers the last 401/403 a card call with it got, until a call succeeds
(issue 12, item 10): in its view, over REST, in the CLI — and a success costs no database
write, except the first one after a rejection. On SQLite and PostgreSQL, against a real
upstream on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import event, select
from typer.testing import CliRunner

import cardflow
from cardflow import cli
from cardflow.app import Cardflow
from cardflow.store.models import Connection
from tests.conftest import MASTER_KEY, RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

SENTINEL = "s3cr3t-SENTINEL-rej-41x"
USER = "bot"


def _basic(cf: Cardflow, upstream: Upstream, name: str = "Billing") -> str:
    view = cf.connections.create(
        name,
        "basic",
        {"username": USER, "password": SENTINEL},
        allowed_hosts=[f"127.0.0.1:{upstream.port}"],
    )
    return view.id


def _get(cf: Cardflow, connection: str, url: str) -> int | None:
    """Test this card: a Get with the connection; the status code it saw."""
    return cf.test_card("api_connector.get", connection=connection, inputs={"url": url}).status_code


@contextmanager
def _statements(cf: Cardflow) -> Iterator[list[str]]:
    """The SQL statements cardflow sends while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(cf.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(cf.db.engine, "before_cursor_execute", note)


def _touching_connections(statements: list[str]) -> list[str]:
    return [s for s in statements if "connections" in s and "connection_tokens" not in s]


def test_a_401_marks_the_connection_a_403_too_and_a_later_success_clears_it(
    cf: Cardflow, upstream: Upstream
) -> None:
    connection_id = _basic(cf, upstream)
    flow = cf.flows.create(
        {
            "name": "Invoices",
            "trigger": {"type": "manual"},
            "cards": [
                {
                    "id": "fetch",
                    "card": "api_connector.get",
                    "connection": "Billing",
                    # a careless API: its 401 repeats the request, Authorization included
                    "inputs": {"url": f"{upstream.url}/reflect?status=401"},
                }
            ],
        }
    )
    assert cf.connections.get(connection_id).rejected is None
    before = datetime.now(UTC)
    run = cf.run_flow(flow.id)
    assert run.status == "failed"
    rejected = cf.connections.get(connection_id).rejected
    assert rejected is not None
    assert rejected.status_code == 401
    assert before <= rejected.at <= datetime.now(UTC)
    assert (rejected.run_id, rejected.flow_id, rejected.flow_name, rejected.card_id) == (
        run.id,
        flow.id,
        "Invoices",
        "fetch",
    )
    assert cf.connections.get(connection_id).status == "ready"  # a status of its own

    # A 403 (Test this card: no flow) replaces it; other failures change nothing.
    assert _get(cf, "Billing", f"{upstream.url}/status/403") == 403
    rejected = cf.connections.get(connection_id).rejected
    assert rejected is not None
    assert (rejected.status_code, rejected.flow_id, rejected.card_id) == (403, None, None)
    assert _get(cf, "Billing", f"{upstream.url}/status/404") == 404
    assert _get(cf, "Billing", f"{upstream.url}/status/500") == 500
    assert cf.connections.get(connection_id).rejected == rejected

    assert _get(cf, "Billing", f"{upstream.url}/json") == 200
    assert cf.connections.get(connection_id).rejected is None
    assert [c.rejected for c in cf.connections.list()] == [None]


def test_the_record_holds_no_secret_nor_anything_the_upstream_answered(
    cf: Cardflow, upstream: Upstream
) -> None:
    connection_id = _basic(cf, upstream)
    # The 401's body and headers repeat the Authorization header (the secret, base64).
    assert _get(cf, "Billing", f"{upstream.url}/reflect?status=401") == 401
    encoded = base64.b64encode(f"{USER}:{SENTINEL}".encode()).decode()
    assert any(encoded in value for _, value in upstream.requests[-1]["headers"])
    view = cf.connections.get(connection_id)
    assert view.rejected is not None
    shown = view.model_dump_json()
    with cf.db.session() as session:
        row = session.scalars(select(Connection).where(Connection.id == connection_id)).one()
        stored = json.dumps(
            {c.name: getattr(row, c.name) for c in Connection.__table__.columns},
            default=str,
        )
    for text in (shown, stored):
        assert SENTINEL not in text and encoded not in text and "reflect" not in text


def test_a_success_costs_no_database_write_except_the_first_after_a_rejection(
    settings_kwargs: dict[str, object], upstream: Upstream
) -> None:
    # Connections revalidated once a minute: every call below uses what the process knows.
    with cardflow.open(**settings_kwargs, config_cache_seconds=60) as cf:
        _basic(cf, upstream)
        assert _get(cf, "Billing", f"{upstream.url}/json") == 200  # loads the connection
        with _statements(cf) as seen:
            for _ in range(10):
                assert cf.run_card(
                    "api_connector.get",
                    connection="Billing",
                    inputs={"url": f"{upstream.url}/json"},
                ).ok
        assert _touching_connections(seen) == []  # no read, no write

        assert (
            cf.run_card(
                "api_connector.get",
                connection="Billing",
                inputs={"url": f"{upstream.url}/status/401"},
            ).status_code
            == 401
        )
        assert cf.connections.get("Billing").rejected is not None  # a library call marks too
        with _statements(cf) as seen:
            for _ in range(10):
                assert cf.run_card(
                    "api_connector.get",
                    connection="Billing",
                    inputs={"url": f"{upstream.url}/json"},
                ).ok
        writes = [s for s in _touching_connections(seen) if s.lstrip().upper().startswith("UPDATE")]
        assert len(writes) == 1  # the first success clears the record; the others do nothing
        assert len(_touching_connections(seen)) == 1
        assert cf.connections.get("Billing").rejected is None


def test_another_process_sees_the_record_and_clears_it_once_it_revalidates(
    settings_kwargs: dict[str, object], upstream: Upstream
) -> None:
    """Two processes on one database (serve --processes N, workers): the one that did not
    see the 401 does not clear it before it revalidates the connection (a delay, never a
    write per call), then its first success clears it."""
    with (
        cardflow.open(**settings_kwargs, config_cache_seconds=60) as one,
        cardflow.open(**settings_kwargs, config_cache_seconds=60) as other,
    ):
        connection_id = _basic(one, upstream)
        assert _get(other, "Billing", f"{upstream.url}/json") == 200  # known: not rejected
        assert _get(one, "Billing", f"{upstream.url}/status/401") == 401
        with _statements(other) as seen:
            assert _get(other, "Billing", f"{upstream.url}/json") == 200
        assert _touching_connections(seen) == []
        assert other.connections.get(connection_id).rejected is not None  # not cleared yet

        other.runtimes.forget(connection_id)  # as when config_cache_seconds have passed
        assert _get(other, "Billing", f"{upstream.url}/json") == 200
        assert one.connections.get(connection_id).rejected is None

        # The process that recorded it still believes in it: one write that changes
        # nothing, then it knows better.
        assert connection_id in one.runtimes.rejections.marked
        with _statements(one) as seen:
            for _ in range(3):
                assert _get(one, "Billing", f"{upstream.url}/json") == 200
        updates = [
            s for s in _touching_connections(seen) if s.lstrip().upper().startswith("UPDATE")
        ]
        assert len(updates) == 1
        assert connection_id not in one.runtimes.rejections.marked


def test_new_credentials_clear_the_record(cf: Cardflow, upstream: Upstream) -> None:
    connection_id = _basic(cf, upstream)
    assert _get(cf, "Billing", f"{upstream.url}/status/401") == 401
    cf.connections.update(connection_id, name="Billing (EU)")
    assert cf.connections.get(connection_id).rejected is not None  # a new name: same secrets
    cf.connections.update(connection_id, config={"password": "another"})
    assert cf.connections.get(connection_id).rejected is None
    assert connection_id not in cf.runtimes.rejections.marked


def test_rest_and_cli_show_the_rejection(
    cf: Cardflow,
    server: RunningServer,
    upstream: Upstream,
    settings_kwargs: dict[str, object],
) -> None:
    connection_id = _basic(cf, upstream)
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        tested = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "Billing", "inputs": {"url": f"{upstream.url}/status/403"}},
        ).json()
        assert tested["error"]["status_code"] == 403
        shown = client.get(f"/api/v1/connections/{connection_id}").json()
        listed = client.get("/api/v1/connections").json()
    assert shown["rejected"]["status_code"] == 403
    assert datetime.fromisoformat(shown["rejected"]["at"]).tzinfo is not None
    assert listed[0]["rejected"] == shown["rejected"]
    assert set(shown["rejected"]) == {
        "status_code",
        "at",
        "run_id",
        "flow_id",
        "flow_name",
        "card_id",
    }

    env = {"CARDFLOW_HOME": str(settings_kwargs["home"]), "CARDFLOW_MASTER_KEY": MASTER_KEY}
    if "database_url" in settings_kwargs:
        env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
    runner = CliRunner()
    as_json = runner.invoke(cli.app, ["connection", "show", "Billing", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["rejected"] == shown["rejected"]
    listed_json = runner.invoke(cli.app, ["connection", "list", "--json"], env=env)
    assert json.loads(listed_json.stdout)[0]["rejected"] == shown["rejected"]
    text = runner.invoke(cli.app, ["connection", "show", "Billing"], env=env)
    at = datetime.fromisoformat(shown["rejected"]["at"]).isoformat(timespec="seconds")
    assert f"HTTP 403 at {at}" in text.stdout
    table = runner.invoke(cli.app, ["connection", "list"], env={**env, "COLUMNS": "120"})
    assert "rejected 403" in table.stdout
    for result in (as_json, listed_json, text, table):
        assert SENTINEL not in result.stdout


def test_a_token_refetched_after_a_401_that_then_works_is_no_rejection(
    cf: Cardflow, oauth_server: OAuthServer, upstream: Upstream
) -> None:
    """Client Credentials: a 401 is answered with a fresh token and one retry; only what
    the card finally got counts."""
    oauth_server.add_client("svc-rej", SENTINEL, "client_secret_post", scope="read")
    cf.connections.create(
        "Token",
        "client_credentials",
        {"token_url": oauth_server.token_url, "client_id": "svc-rej", "client_secret": SENTINEL},
    )
    me = f"{oauth_server.url}/api/me"
    assert _get(cf, "Token", me) == 200
    oauth_server.revoke_all()  # the cached token now gets a 401: fetched anew, then 200
    assert _get(cf, "Token", me) == 200
    assert oauth_server.token_requests == 2
    assert cf.connections.get("Token").rejected is None

    # An API that refuses even the fresh token: recorded once, as the card saw it.
    assert _get(cf, "Token", f"{upstream.url}/status/401") == 401
    assert oauth_server.token_requests == 3
    rejected = cf.connections.get("Token").rejected
    assert rejected is not None and rejected.status_code == 401
    assert _get(cf, "Token", me) == 200
    assert cf.connections.get("Token").rejected is None
