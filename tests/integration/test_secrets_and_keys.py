"""Secrets never leak; the master key and data-key rotation behave."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

import cardflow
from cardflow.app import Cardflow
from cardflow.errors import ConfigurationError
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

PASSWORD = "basic-SENTINEL-pw-0b1d"
HEADER_VALUE = "custom-SENTINEL-key-77aa"
CLIENT_SECRET = "cc-SENTINEL-secret-5e5e"
SENTINELS = (PASSWORD, HEADER_VALUE, CLIENT_SECRET)
PROVIDER_LOGGERS = ("authlib", "werkzeug", "aiohttp.access", "aiohttp.server", "aiohttp.web")


def _make_connections(cf: Cardflow, oauth: OAuthServer) -> None:
    oauth.add_client("leak-svc", CLIENT_SECRET, "client_secret_post")
    cf.connections.create("b", "basic", {"username": "u", "password": PASSWORD})
    cf.connections.create("c", "custom", {"header_name": "X-Api-Key", "header_value": HEADER_VALUE})
    cf.connections.create(
        "cc",
        "client_credentials",
        {"token_url": oauth.token_url, "client_id": "leak-svc", "client_secret": CLIENT_SECRET},
    )


def _database_text(cf: Cardflow) -> bytes:
    """Everything stored, as bytes: the SQLite files, or a dump of every PostgreSQL table."""
    if cf.db.is_sqlite:
        cf.db.dispose()
        path = Path(cf.db.url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    chunks: list[bytes] = []
    with cf.db.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                chunks.append(repr(tuple(row)).encode())
    return b"\n".join(chunks)


def test_no_secret_in_database_logs_results_or_runs(
    cf: Cardflow,
    oauth_server: OAuthServer,
    upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _make_connections(cf, oauth_server)
    outputs: list[str] = []
    for name in ("b", "c", "cc"):
        for path in ("/echo-not-there", "/status/500", "/json"):
            url = (
                oauth_server.url + "/api/me"
                if name == "cc" and path == "/json"
                else upstream.url + path
            )
            result = cf.test_card("api_connector.get", connection=name, inputs={"url": url})
            outputs.append(repr(result.error))
            if result.run_id:
                outputs.append(repr(cf.runs.get(result.run_id)))
    outputs.extend(repr(view.model_dump(mode="json")) for view in cf.connections.list())
    stored = _database_text(cf)
    # The loopback test servers (the provider's side) may log what they like; cardflow,
    # and the client libraries it drives, may not.
    formatter = logging.Formatter("%(name)s %(message)s")
    ours = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if not record.name.startswith(PROVIDER_LOGGERS)
    )
    assert any(r.name.startswith("authlib") for r in caplog.records)  # logs were captured
    for sentinel in SENTINELS:
        assert sentinel.encode() not in stored, sentinel
        assert all(sentinel not in text_ for text_ in outputs), sentinel
        assert sentinel not in ours, sentinel
    for token in oauth_server.issued_tokens:
        assert token.encode() not in stored
        assert token not in ours


def test_wrong_master_key_is_refused_at_start(tmp_path: Path) -> None:
    with cardflow.open(home=tmp_path, master_key="11" * 32) as cf:
        cf.connections.create("b", "basic", {"username": "u", "password": PASSWORD})
    with pytest.raises(ConfigurationError, match="master key does not match"):
        cardflow.open(home=tmp_path, master_key="22" * 32)


def test_lost_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    with cardflow.open(home=tmp_path) as cf:
        cf.connections.create("b", "basic", {"username": "u", "password": PASSWORD})
    key_file = tmp_path / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.unlink()
    with pytest.raises(ConfigurationError, match="no master key was found"):
        cardflow.open(home=tmp_path)
    assert not key_file.exists()


def test_keys_rotate_reencrypts_everything(
    settings_kwargs: dict[str, Any], oauth_server: OAuthServer
) -> None:
    with cardflow.open(**settings_kwargs) as cf:
        _make_connections(cf, oauth_server)
        assert cf.test_card(
            "api_connector.get", connection="cc", inputs={"url": f"{oauth_server.url}/api/me"}
        ).ok
        before = _key_ids(cf)
        report = cf.keyring.rotate()
        assert report.connections == 3 and report.tokens == 1
        after = _key_ids(cf)
        assert after == {report.new_key_id} and report.new_key_id not in before
        # A second process (new Cardflow) reads everything back under the new key.
    with cardflow.open(**settings_kwargs) as other:
        assert other.connections.load("b").config.password == PASSWORD  # type: ignore[attr-defined]
        assert other.connections.load("cc").config.client_secret == CLIENT_SECRET  # type: ignore[attr-defined]
        assert other.test_card(
            "api_connector.get", connection="cc", inputs={"url": f"{oauth_server.url}/api/me"}
        ).ok
        assert oauth_server.token_requests == 1  # the stored token survived rotation
        second = other.keyring.rotate()
        assert second.retired_keys_removed >= 1


def test_rotation_while_serving_keeps_cards_working(cf: Cardflow, upstream: Upstream) -> None:
    cf.connections.create("b", "basic", {"username": "u", "password": PASSWORD})
    assert cf.test_card(
        "api_connector.get", connection="b", inputs={"url": f"{upstream.url}/echo"}
    ).ok
    cf.keyring.rotate()
    cf.connections.update("b", config={"username": "u2"})  # written under the new key
    result = cf.test_card(
        "api_connector.get", connection="b", inputs={"url": f"{upstream.url}/echo"}
    )
    assert result.ok
    assert cf.connections.load("b").config.password == PASSWORD  # type: ignore[attr-defined]


def _key_ids(cf: Cardflow) -> set[int]:
    with cf.db.engine.connect() as conn:
        ids = conn.execute(
            text(
                "SELECT secrets_key_id FROM connections WHERE secrets_key_id IS NOT NULL "
                "UNION SELECT token_key_id FROM connection_tokens WHERE token_key_id IS NOT NULL"
            )
        ).scalars()
        return set(ids)


def test_postgres_url_password_is_not_shown(tmp_path: Path) -> None:
    url = "postgresql://cardflow:pg-SENTINEL@127.0.0.1:1/nowhere"
    with pytest.raises(ConfigurationError) as info:
        cardflow.open(home=tmp_path, database_url=url)
    assert "pg-SENTINEL" not in str(info.value)
    assert "CARDFLOW_DATABASE_URL" in str(info.value)


_ = psycopg  # the PostgreSQL variant of these tests runs through the `cf` fixture
