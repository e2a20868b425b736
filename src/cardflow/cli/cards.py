"""``cardflow card test``: run a card once, record the run and show what came back."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cardflow.cards.curl import ConnectionProposal, import_curl
from cardflow.cards.curl.export import card_to_curl
from cardflow.cards.registry import get_card
from cardflow.cards.runner import CardResult
from cardflow.cli._common import (
    JsonOpt,
    cells,
    console,
    err_console,
    guard,
    open_cardflow,
    parse_pairs,
    print_json,
    want_json,
)
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import InvalidInput

card_app = typer.Typer(help="Run a card once (Test this card).", no_args_is_help=True)


class OnError(StrEnum):
    fail = "fail"
    continue_ = "continue"


def _input_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _card_inputs(
    pairs: Sequence[str] | None, inputs_json: str | None, inputs_file: Path | None
) -> dict[str, Any]:
    if inputs_json is not None and inputs_file is not None:
        raise InvalidInput("Give --inputs-json or --inputs-file, not both.", field="inputs")
    inputs: Any = {}
    source = "--inputs-json"
    if inputs_file is not None:
        source = f"--inputs-file {inputs_file}"
        try:
            inputs_json = (
                sys.stdin.read() if str(inputs_file) == "-" else inputs_file.read_text("utf-8")
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{source}: cannot read it ({exc}).", field="inputs") from None
    if inputs_json is not None:
        try:
            inputs = json.loads(inputs_json)
        except ValueError as exc:
            raise InvalidInput(f"{source}: not valid JSON ({exc}).", field="inputs") from None
        if not isinstance(inputs, dict):
            raise InvalidInput(f"{source}: must be a JSON object.", field="inputs")
    for key, value in parse_pairs(pairs, "--input", "KEY=VALUE"):
        inputs[key] = _input_value(value)
    return dict(inputs)


def _print_body(out: Console, body: Any) -> None:
    if body is None or body == "":
        out.print(Text("(empty body)", style="dim"))
    elif isinstance(body, str):
        out.print(Text(body), soft_wrap=True)
    else:
        out.print_json(data=body, default=str)


def _print_card_result(card_id: str, result: CardResult) -> None:
    out = console()
    outputs = result.outputs or {}
    status = "succeeded" if result.ok else "failed"
    summary = Text.assemble(
        (f"{card_id} {status}", "bold green" if result.ok else "bold red"),
        f"  in {result.duration_ms:.1f} ms",
    )
    if result.status_code is not None:
        summary.append(f"  HTTP {result.status_code}")
    out.print(summary, soft_wrap=True)
    if result.run_id:
        out.print(Text(f"run id: {result.run_id}"))
    if result.error:
        error = result.error
        err_console().print(
            Text(f"error: {error.get('type')}: {error.get('message')}", style="bold red"),
            soft_wrap=True,
        )
        if error.get("body_excerpt"):
            out.print(Text("response body (excerpt):", style="bold"))
            _print_body(out, error["body_excerpt"])
    if {"status_code", "headers", "body"} <= set(outputs):
        headers = outputs.get("headers") or {}
        if headers:
            table = Table("HEADER", "VALUE", title="Response headers", title_justify="left")
            for key, value in headers.items():
                table.add_row(*cells(key, value))
            out.print(table)
        out.print(Text("Body:", style="bold"))
        _print_body(out, outputs.get("body"))
    elif outputs:
        out.print(Text("Outputs:", style="bold"))
        out.print_json(data=outputs, default=str)


@card_app.command("test")
def card_test(
    card_id: Annotated[str, typer.Argument(help="The card, e.g. api_connector.get.")],
    connection: Annotated[
        str | None, typer.Option("--connection", help="The connection's id or name.")
    ] = None,
    input_pairs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            metavar="KEY=VALUE",
            help="An input (repeatable). The value is read as JSON when it parses "
            "(--input query='{\"a\": 1}'), else as text.",
        ),
    ] = None,
    inputs_json: Annotated[
        str | None, typer.Option("--inputs-json", help="All inputs as a JSON object.")
    ] = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option(
            "--inputs-file", help="A file holding the inputs as a JSON object ('-': stdin)."
        ),
    ] = None,
    on_error: Annotated[
        OnError, typer.Option("--on-error", help="continue: return the outputs of a failure too.")
    ] = OnError.fail,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait (default 30).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    r"""Test this card: run it once, record the run and show what came back.

    Exit code 0 when the card succeeded, 1 when it failed, 2 for bad input.

    Example:
      cardflow card test api_connector.get --connection "JIRA - Basic - bot" \
        --input url=https://jira.example.com/rest/api/3/myself --input query='{"expand": "groups"}'
    """
    as_json = want_json(json_output)
    options: dict[str, Any] = {"on_error": on_error.value}
    if timeout is not None:
        options["timeout"] = timeout
    with guard(as_json):
        inputs = _card_inputs(input_pairs, inputs_json, inputs_file)
    with open_cardflow(as_json) as cf:
        result = cf.test_card(card_id, connection=connection, inputs=inputs, options=options)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_card_result(card_id, result)
    if not result.ok:
        raise typer.Exit(1)


def _step_yaml(card: dict[str, Any]) -> str:
    """The card as one item of a flow file's cards: list."""
    step = {"id": card["card"].rsplit(".", 1)[-1], **card}
    return str(yaml.safe_dump([step], sort_keys=False, allow_unicode=True, width=100))


def _create_command(proposal: ConnectionProposal, show_secrets: bool) -> str:
    """The ``cardflow connection create`` that makes it, its secrets asked for, not typed."""
    secret = AUTH_TYPES[proposal.auth_type].config.secret_fields
    words = ["cardflow", "connection", "create", proposal.name, "--type", proposal.auth_type]
    for key, value in proposal.config.items():
        if key not in secret:  # a username that is the API key (Stripe) masked unless asked
            shown = "***" if key in proposal.secret_fields and not show_secrets else value
            words += ["--set", f"{key}={shown}"]
    for host in proposal.allowed_hosts:
        words += ["--allowed-host", host]
    return " ".join(shlex.quote(w) for w in words)


def _proposal_comment(
    data: dict[str, Any], proposal: ConnectionProposal, show_secrets: bool
) -> str:
    lines = [
        "",
        "# The command's credentials are not in the card: create this connection and pick it",
        "# in the card (secrets are asked for by a hidden prompt):",
        f"#   {_create_command(proposal, show_secrets)}",
    ]
    body = yaml.safe_dump({"connection": data}, sort_keys=False, allow_unicode=True, width=100)
    lines += [f"# {line}" for line in body.splitlines()]
    return "\n".join(lines) + "\n"


@card_app.command("from-curl")
def card_from_curl(
    command: Annotated[
        str | None,
        typer.Argument(
            help="The curl command (quote it), or '-' or nothing to read it from standard input."
        ),
    ] = None,
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--show-secrets", help="Show the credentials of the proposed connection unmasked."
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    r"""cURL import: print the card a curl command makes, as a flow file lists it.

    Credentials in the command (-u, an Authorization or API-key header, --oauth2-bearer) are
    not put in the card: they are shown as a connection to create, masked unless
    --show-secrets. Warnings (what the card could not keep) go to standard error.
    Exit code 0, or 2 when it is not a curl command cardflow can read.

    Examples:
      cardflow card from-curl 'curl -u bot:TOKEN https://jira.example.com/x'
      pbpaste | cardflow card from-curl --json
    """
    as_json = want_json(json_output)
    with guard(as_json):
        text = sys.stdin.read() if command in (None, "-") else command
        result = import_curl(text)
    if as_json:
        print_json(result.to_dict(show_secrets=show_secrets))
        return
    out = _step_yaml(result.card)
    if result.connection is not None:
        data = result.to_dict(show_secrets=show_secrets)["connection"]
        out += _proposal_comment(data, result.connection, show_secrets)
    typer.echo(out, nl=False)
    for warning in result.warnings:
        err_console().print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


@card_app.command("to-curl")
def card_to_curl_command(
    card_id: Annotated[str, typer.Argument(help="The card, e.g. api_connector.post.")],
    connection: Annotated[
        str | None, typer.Option("--connection", help="The connection's id or name.")
    ] = None,
    input_pairs: Annotated[
        list[str] | None,
        typer.Option("--input", metavar="KEY=VALUE", help="An input (repeatable), as card test."),
    ] = None,
    inputs_json: Annotated[
        str | None, typer.Option("--inputs-json", help="All inputs as a JSON object.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    r"""Copy as cURL: print the curl command making this card's request.

    The connection's secrets are placeholders (<password>, <header_value>,
    <access_token>); {{ }} expressions are left as typed.

    Example:
      cardflow card to-curl api_connector.get --connection "JIRA - Basic - bot" \
        --input url=https://jira.example.com/rest/api/3/myself
    """
    as_json = want_json(json_output)
    with guard(as_json):
        inputs = _card_inputs(input_pairs, inputs_json, None)
        get_card(card_id)
    with open_cardflow(as_json) as cf:
        view = cf.connections.get(connection) if connection else None
        command = card_to_curl(
            card_id,
            inputs,
            auth_type=view.auth_type if view else None,
            config=view.config if view else None,
            base_url=view.base_url if view else None,
        )
    if as_json:
        print_json({"command": command})
    else:
        typer.echo(command)
