"""``cardflow token``: mint, list and revoke the API tokens that /api/v1 accepts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cardflow.cli._common import (
    JsonOpt,
    cells,
    console,
    err_console,
    fixed,
    open_cardflow,
    print_json,
    short_time,
    want_json,
)

token_app = typer.Typer(help="Mint, list and revoke API tokens for /api/v1.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise the token by.")],
    user: Annotated[
        str | None,
        typer.Option("--user", help="The user it acts for (name or id; default: the owner)."),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="A narrower role than its user's (viewer, builder, admin, owner); default: "
            "the user's role, whatever it is at each request.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Mint an API token and print it once (only its hash is stored).

    The token is the only thing printed on stdout. It acts for its user, with their role or
    the narrower --role: never more than the user's role at the time of a request.

    Example: TOKEN=$(cardflow token create --name ci --role viewer)
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        token_id, token = cf.api_tokens.create(name, user=user, role=role)
        view = next(item for item in cf.api_tokens.list() if item.id == token_id)
    if as_json:
        print_json(
            {
                "id": token_id,
                "name": view.name,
                "user": view.user_name,
                "role": view.role,
                "token": token,
            }
        )
        return
    typer.echo(token)
    if sys.stderr.isatty():
        err_console().print(
            Text(
                "Store this token now: it is not shown again. Send it as "
                "'Authorization: Bearer <token>'.",
                style="dim",
            ),
            soft_wrap=True,
        )


@token_app.command("list")
def token_list(json_output: JsonOpt = False) -> None:
    """List API tokens (names and ids; the tokens themselves are never shown).

    Example: cardflow token list
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        tokens = cf.api_tokens.list()
    if as_json:
        print_json(tokens)
        return
    if not tokens:
        console().print("No API tokens. Mint one with: cardflow token create --name NAME")
        return
    table = Table("NAME", "USER", "ROLE", fixed("ID"), fixed("CREATED"))
    for item in tokens:
        table.add_row(
            *cells(
                item.name,
                item.user_name,
                item.role or "(the user's)",
                item.id,
                short_time(item.created_at),
            )
        )
    console().print(table)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name or id.")],
    json_output: JsonOpt = False,
) -> None:
    """Revoke an API token: requests using it are refused from now on.

    Example: cardflow token revoke ci
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        cf.api_tokens.revoke(name)
    if as_json:
        print_json({"revoked": name})
    else:
        console().print(Text(f"Revoked API token {name!r}."))
