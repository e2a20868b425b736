"""Running and looking after cardflow: ``cardflow serve``, ``keys rotate``, ``db upgrade``."""

from __future__ import annotations

import os
import signal
import tempfile
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from cardflow.cli._common import (
    JsonOpt,
    console,
    err_console,
    fail,
    guard,
    load_settings,
    open_cardflow,
    print_json,
    want_json,
)
from cardflow.errors import InvalidInput
from cardflow.settings import Settings, http_url
from cardflow.store.db import Database

if TYPE_CHECKING:
    from datetime import datetime

    from cardflow.app import Cardflow

keys_app = typer.Typer(help="Manage the keys that encrypt secrets.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default CARDFLOW_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port to bind (default CARDFLOW_PORT, 8080)."),
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="PostgreSQL: do not execute queued runs in this process (leave them to "
            "`cardflow worker` processes).",
        ),
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="HTTP processes sharing the port (PostgreSQL only; each also works the "
            "queue unless --no-worker).",
        ),
    ] = 1,
    json_output: JsonOpt = False,
) -> None:
    """Run the web app and the REST API (/api/v1, OpenAPI at /docs).

    With SQLite (the embedded default) every run executes in this process. With
    PostgreSQL, runs that nobody waits for (respond-async, manual runs, the rest of a flow
    after its Close card) are queued, and this process also works the queue unless
    --no-worker.

    Example: cardflow serve --host 127.0.0.1 --port 8080
    """
    as_json = want_json(json_output)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if no_worker:
        overrides["embedded_worker"] = False
    with open_cardflow(as_json, **overrides) as cf:  # checks the database and keys up front
        settings = cf.settings
        if processes > 1 and cf.db.is_sqlite:
            fail(
                InvalidInput(
                    "--processes above 1 needs PostgreSQL (set CARDFLOW_DATABASE_URL="
                    "postgresql://…): the embedded SQLite database is served by one process.",
                    field="processes",
                ),
                as_json,
            )
        has_token = bool(cf.api_tokens.list())
        # First start: a login link for the web app (printed, never logged).
        first_link = None if cf.web_sessions.any_login_link() else _new_login_link(cf)[0]
    # Imported here: the web stack is only loaded by the command that serves it.
    from cardflow.logs import configure_logging
    from cardflow.server.asgi import create_app
    from cardflow.server.process import tune_for_serving

    with guard(as_json):
        application = create_app(settings=settings, worker=settings.embedded_worker)
    url = http_url(settings.host, settings.port)
    if as_json:
        print_json(
            {
                "url": url,
                "public_url": settings.public_url,
                "api_token_exists": has_token,
                "login_url": first_link,
            }
        )
    else:
        out = console()
        out.print(Text.assemble("cardflow serving on ", (url, "bold")), soft_wrap=True)
        if first_link:
            out.print(
                Text.assemble(
                    "Log in to the web app (this link works once, for 15 minutes): ",
                    (first_link, "bold"),
                ),
                soft_wrap=True,
            )
        else:
            out.print(
                Text.assemble(
                    "Web app: ",
                    (settings.public_url, "bold"),
                    " (a login link: ",
                    ("cardflow login-link", "bold"),
                    ")",
                ),
                soft_wrap=True,
            )
        out.print(Text(f"REST API: {url}/api/v1   OpenAPI: {url}/docs"), soft_wrap=True)
        if not has_token:
            out.print(
                Text.assemble(
                    "No API token exists yet. Mint one for /api/v1 with: ",
                    ("cardflow token create --name NAME", "bold"),
                ),
                soft_wrap=True,
            )
    configure_logging(settings.log_level)
    tune_for_serving()
    from cardflow.cli import serving

    marker = serving.record(settings)  # for `cardflow login-link`
    # uvicorn stops gracefully on SIGTERM, then raises it again for its default effect;
    # ending with exit status 0 instead lets the record above go
    signal.signal(signal.SIGTERM, _stopped)
    try:
        _run_uvicorn(application, settings, processes, overrides)
    finally:
        serving.forget(marker)


def _stopped(_signal: int, _frame: Any) -> None:
    raise SystemExit(0)


def _run_uvicorn(
    application: Any, settings: Settings, processes: int, overrides: dict[str, Any]
) -> None:
    import uvicorn

    if processes > 1:
        # Each process builds its own app from the environment (cardflow.server.asgi:
        # from_environment), so what the options set travels there.
        for name, value in overrides.items():
            os.environ[f"CARDFLOW_{name.upper()}"] = str(value).lower()
        # /metrics adds up the processes' counters, kept in files of this directory
        with tempfile.TemporaryDirectory(prefix="cardflow-metrics-") as shared:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
            uvicorn.run(
                "cardflow.server.asgi:from_environment",
                factory=True,
                workers=processes,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
            )
        return
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logging set up above
        # uvicorn's access log prints query strings, where client tokens may travel;
        # cardflow logs each request itself, path only.
        access_log=False,
    )


def _new_login_link(cf: Cardflow, base: str | None = None) -> tuple[str, datetime]:
    token, expires = cf.web_sessions.create_login_link()
    return f"{(base or cf.settings.public_url).rstrip('/')}/login?token={token}", expires


def link_base(cf: Cardflow) -> str:
    """Where links open: CARDFLOW_PUBLIC_URL when set, else the running serve's address."""
    from cardflow.cli import serving

    if cf.settings.public_url_given:
        return cf.settings.public_url
    return serving.recorded_url(cf.settings) or cf.settings.public_url


def login_link(json_output: JsonOpt = False) -> None:
    """Print a one-time login link for the web app, as the owner (works once, for 15
    minutes).

    The link is the only thing printed on stdout. It opens at CARDFLOW_PUBLIC_URL when
    set, else where the `cardflow serve` running from this CARDFLOW_HOME listens.

    Example: cardflow login-link
    """
    from cardflow.cli import serving

    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        settings = cf.settings
        explicit = settings.public_url_given
        base = None if explicit else serving.recorded_url(settings)
        url, expires = _new_login_link(cf, base)
    if not explicit and base is None:
        err_console().print(
            Text(
                f"No cardflow serve is running from {settings.home}: the link points at "
                f"{settings.public_url}. If the server listens elsewhere, set "
                "CARDFLOW_PUBLIC_URL to its address."
            ),
            soft_wrap=True,
        )
    if as_json:
        print_json({"url": url, "expires_at": expires.isoformat()})
        return
    typer.echo(url)


@keys_app.command("rotate")
def keys_rotate(json_output: JsonOpt = False) -> None:
    """Re-encrypt every secret and token under a new data key (safe while serving).

    Example: cardflow keys rotate
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        report = cf.keyring.rotate()
    if as_json:
        print_json(asdict(report))
        return
    console().print(
        Text(
            f"Rotated to data key {report.new_key_id}: re-encrypted {report.connections} "
            f"connection secret set(s) and {report.tokens} stored token set(s); removed "
            f"{report.retired_keys_removed} retired key(s) no longer in use."
        ),
        soft_wrap=True,
    )


@db_app.command("upgrade")
def db_upgrade(json_output: JsonOpt = False) -> None:
    """Apply pending database migrations (cardflow serve also does this on start).

    Example: CARDFLOW_DATABASE_URL=postgresql://cardflow@db/cardflow cardflow db upgrade
    """
    as_json = want_json(json_output)
    with guard(as_json):
        database = Database(load_settings().resolved_database_url)
        try:
            database.upgrade()
        finally:
            database.dispose()
    if as_json:
        print_json({"database": database.safe_url, "upgraded": True})
    else:
        console().print(Text(f"Database is up to date: {database.safe_url}"), soft_wrap=True)
