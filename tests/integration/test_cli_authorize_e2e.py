"""`cardflow connection authorize` end to end: CLI, real provider, real server callback."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cardflow.cli import app
from cardflow.store.models import OAuthState
from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI shares the server's database
def test_cli_authorize_waits_until_the_browser_finishes(
    server: RunningServer, oauth_server: OAuthServer, backend: str
) -> None:
    settings = server.cf.settings
    env = {
        "CARDFLOW_HOME": str(settings.home),
        "CARDFLOW_MASTER_KEY": settings.master_key.get_secret_value(),  # type: ignore[union-attr]
        "CARDFLOW_PUBLIC_URL": settings.public_url,
        "SECRET": "cli-e2e-SENTINEL",
    }
    oauth_server.add_client(
        "cli-app",
        "cli-e2e-SENTINEL",
        scope="read",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["connection", "create", "Provider - OAuth - cli", "--type", "oauth",
         "--set", f"authorize_url={oauth_server.authorize_url}",
         "--set", f"token_url={oauth_server.token_url}",
         "--set", "client_id=cli-app", "--set", "scope=read",
         "--secret-env", "client_secret=SECRET"],
        env=env,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "cli-e2e-SENTINEL" not in created.output

    box: dict[str, object] = {}

    def run_cli() -> None:
        box["result"] = runner.invoke(
            app,
            ["connection", "authorize", "Provider - OAuth - cli", "--json", "--timeout", "30"],
            env=env,
        )

    thread = threading.Thread(target=run_cli)
    thread.start()
    for _ in range(200):  # wait until the CLI has created its state and is waiting
        with server.cf.db.session() as session:
            if session.scalar(select(func.count()).select_from(OAuthState)):
                break
        time.sleep(0.05)
    # CliRunner hands over the output only when the command ends, so the browser starts
    # from the connection's authorize route (a second state, equally valid).
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        page = authorize_in_browser(client, "/api/v1/connections/Provider - OAuth - cli/authorize")
    assert "Connection ready" in page.text
    thread.join(timeout=30)
    result = box["result"]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    url = lines[0]["authorize_url"]
    assert url.startswith(oauth_server.authorize_url)
    assert lines[-1]["status"] == "ready", result.output  # type: ignore[attr-defined]
    assert result.exit_code == 0  # type: ignore[attr-defined]
