"""The ``cardflow`` command: a thin Typer layer over the services the server uses.

Every command opens cardflow once, calls a service, prints the result (Rich for people,
``--json`` for scripts) and closes it. Secrets are never read from a plain argument and never
printed. One module per command group; what they share is in ``_common``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cardflow import __version__
from cardflow.cli import _help
from cardflow.cli._common import JsonOpt, root_json
from cardflow.cli.admin import db_app, keys_app, login_link, serve
from cardflow.cli.audit import audit_app
from cardflow.cli.cards import card_app
from cardflow.cli.connections import connection_app
from cardflow.cli.flows import flow_app
from cardflow.cli.runs import run_app
from cardflow.cli.tokens import token_app
from cardflow.cli.users import user_app
from cardflow.cli.worker import worker

__all__ = ["app", "main"]

_help.install()

app = typer.Typer(
    name="cardflow",
    help="cardflow: call third-party HTTP APIs with stored, encrypted credentials.\n\n"
    "Settings come from CARDFLOW_* environment variables (CARDFLOW_HOME, "
    "CARDFLOW_DATABASE_URL, CARDFLOW_MASTER_KEY, ...).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(serve)
app.command("login-link")(login_link)
app.command()(worker)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(connection_app, name="connection")
app.add_typer(card_app, name="card")
app.add_typer(flow_app, name="flow")
app.add_typer(run_app, name="run")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cardflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    json_output: JsonOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Options for every command (the help text is the Typer app's)."""
    root_json.set(json_output)


def main() -> None:
    """Entry point of the ``cardflow`` console script."""
    app(prog_name="cardflow")
