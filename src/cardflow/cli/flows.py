"""``cardflow flow``: import, export, list, show, run, enable, disable and delete flows, and
their version history (versions, diff, restore).

A flow file is YAML or JSON (one schema, see ``cardflow.flows.model``); ``export`` writes the
exact text ``import`` reads back. The client token of an API-endpoint flow is the flow's own
credential for its callers, so it is printed plainly (as the web UI shows it).
"""

from __future__ import annotations

import json
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from cardflow.cli import _common
from cardflow.cli._common import (
    JsonOpt,
    cells,
    cli_actor,
    console,
    err_console,
    grid,
    grid_row,
    guard,
    kept,
    list_table,
    open_cardflow,
    parse_pairs,
    print_json,
    want_json,
)
from cardflow.cli.runs import print_run
from cardflow.errors import Conflict, InvalidInput, MissingConnections
from cardflow.flows.model import FlowDocument, dump_document, load_document, parse_text
from cardflow.flows.service import FlowView
from cardflow.flows.versions import MAX_NOTE_CHARS

flow_app = typer.Typer(
    help="Manage flows (a trigger plus cards): import and export YAML or JSON, run them.",
    no_args_is_help=True,
)

RefArg = Annotated[str, typer.Argument(help="The flow's id or name.")]
NoteOpt = Annotated[
    str | None,
    typer.Option(
        "--note",
        help=f"What this change is for (at most {MAX_NOTE_CHARS} characters), kept with the "
        "version it makes.",
    ),
]


class FileFormat(StrEnum):
    yaml = "yaml"
    json = "json"


# -- reading input -----------------------------------------------------------------------


def _read_text(path: Path, option: str) -> tuple[str, str]:
    """The text of a file argument (``-`` = standard input) and how to name it in errors."""
    if str(path) == "-":
        return sys.stdin.read(), "standard input"
    try:
        return path.read_text("utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{option} {path}: cannot read it ({exc}).", field=option) from None


def _read_document(path: Path) -> FlowDocument:
    text, source = _read_text(path, "FILE")
    try:
        return load_document(parse_text(text, filename=str(path)))
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc.message}", field=exc.field) from None


def _run_inputs(input_json: str | None, input_file: Path | None) -> dict[str, Any]:
    if input_json is not None and input_file is not None:
        raise InvalidInput("Give --input or --input-file, not both.", field="input")
    if input_json is None and input_file is None:
        return {}
    source = "--input"
    text = input_json
    if input_file is not None:
        text, name = _read_text(input_file, "--input-file")
        source = f"--input-file {name}"
    try:
        inputs = json.loads(text or "")
    except ValueError as exc:
        raise InvalidInput(f"{source}: not valid JSON ({exc}).", field="input") from None
    if not isinstance(inputs, dict):
        raise InvalidInput(f"{source}: must be a JSON object.", field="input")
    return inputs


def _connection_mapping(values: list[str] | None) -> dict[str, str]:
    """``--connection NAME=CONNECTION`` arguments as the import's mapping."""
    mapping: dict[str, str] = {}
    for name, target in parse_pairs(values, "--connection", "NAME=CONNECTION"):
        if name in mapping:
            raise InvalidInput(f"--connection maps {name!r} twice.", field=f"connections.{name}")
        if not target.strip():
            raise InvalidInput(
                f"--connection {name!r}: name the existing connection after '='.",
                field=f"connections.{name}",
            )
        mapping[name] = target.strip()
    return mapping


def _missing_connections(exc: MissingConnections) -> MissingConnections:
    """The refusal of a file naming connections that are not here, saying what to add."""
    lines = ["The flow file names connections that do not exist here:"]
    for missing in exc.missing:
        ids = ", ".join(repr(card["id"]) for card in missing["cards"])
        used = f"card {ids}" if len(missing["cards"]) == 1 else f"cards {ids}"
        lines.append(f"  {missing['name']!r}, used by {used}")
    flags = " ".join(
        f"--connection {shlex.quote(missing['name'] + '=CONNECTION')}" for missing in exc.missing
    )
    lines.append(
        "Map each to an existing connection (its name or id; cardflow connection list shows "
        "them, cardflow connection create makes one) by adding:"
    )
    lines.append(f"  {flags}")
    return MissingConnections("\n".join(lines), missing=exc.missing)


# -- showing -----------------------------------------------------------------------------


def _trigger_text(document: FlowDocument) -> str:
    trigger = document.trigger
    if trigger.type == "api_endpoint":
        return f"POST|GET /invoke/{trigger.alias}"
    return trigger.type


def _print_flow(view: FlowView) -> None:
    document = view.document
    details = grid()
    grid_row(details, "name", view.name)
    grid_row(details, "id", view.id)
    if document.description:
        grid_row(details, "description", document.description)
    grid_row(details, "trigger", _trigger_text(document))
    if document.trigger.type == "api_endpoint":
        grid_row(details, "security", document.trigger.security)
    if view.invoke_url:
        grid_row(details, "invoke URL", view.invoke_url)
    if view.client_token:
        grid_row(details, "client token", view.client_token)
    grid_row(details, "enabled", "yes" if document.enabled else "no")
    grid_row(details, "save data", "yes" if document.save_data else "no")
    grid_row(details, "version", view.version)
    grid_row(details, "saved version", view.saved_version)
    grid_row(details, "created", view.created_at.isoformat())
    grid_row(details, "updated", view.updated_at.isoformat())
    console().print(details)


def _print_cards(document: FlowDocument) -> None:
    if not document.cards:
        console().print(Text("No cards.", style="dim"))
        return
    table = Table("ID", "CARD", "CONNECTION", title="Cards", title_justify="left")
    for at in document.walk():  # cards inside loops and branches indented
        step = at.step
        table.add_row(*cells("  " * at.depth + step.id, step.card, step.connection))
    console().print(table)


def _print_call_hint(view: FlowView) -> None:
    if view.client_token:
        console().print(
            Text(
                "Callers send the client token as the clientToken query parameter or the "
                "x-api-client-token header.",
                style="dim",
            ),
            soft_wrap=True,
        )


# -- commands ----------------------------------------------------------------------------


@flow_app.command("import")
def flow_import(
    file: Annotated[
        Path, typer.Argument(help="A flow file, YAML or JSON ('-' reads standard input).")
    ],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace the flow of the same name if there is one."),
    ] = False,
    as_copy: Annotated[
        bool,
        typer.Option(
            "--as-copy",
            help='Beside a flow of the same name: import as "Name (copy)" (and a free '
            "alias if its alias is taken).",
        ),
    ] = False,
    connection: Annotated[
        list[str] | None,
        typer.Option(
            "--connection",
            metavar="NAME=CONNECTION",
            help="Use an existing connection (name or id) wherever the file names the "
            "connection NAME; repeat for each. Needed for each connection the file names "
            "that does not exist here.",
        ),
    ] = None,
    note: NoteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a flow from a YAML or JSON file (or replace one of the same name).

    Prints the flow's id, trigger, invoke URL and (client_token security) its client token.

    Examples:
      cardflow flow import offboard.yaml
      cardflow flow export "Offboard user" > f.yaml
      cardflow flow import f.yaml --replace --note "Retry the Jira call"
      cardflow flow import f.yaml --as-copy
      cardflow flow import f.yaml --connection "Jira prod=Jira test"
    """
    as_json = want_json(json_output)
    with guard(as_json):
        if replace and as_copy:
            raise InvalidInput("Choose --replace or --as-copy, not both.", field="as_copy")
        mapping = _connection_mapping(connection)
        document = _read_document(file)
    with open_cardflow(as_json) as cf:
        existing = next((v for v in cf.flows.list() if v.name == document.name), None)
        if existing is not None and not (replace or as_copy):
            raise Conflict(
                f"A flow named {document.name!r} already exists ({existing.id}); use "
                "--replace to replace it, or --as-copy to import it beside it.",
                field="name",
            )
        try:
            view = cf.flows.import_document(
                document,
                replace=replace,
                as_copy=as_copy,
                connections=mapping,
                actor=cli_actor(cf),
                note=note,
            )
        except MissingConnections as exc:
            raise _missing_connections(exc) from None
        except InvalidInput as exc:
            name = (exc.field or "").removeprefix("connections.")
            if name == exc.field or name not in mapping:
                raise
            flag = f"--connection {shlex.quote(f'{name}={mapping[name]}')}"
            raise InvalidInput(
                f"{flag}: {exc.message.removeprefix(f'{exc.field}: ')}", field=exc.field
            ) from None
    if as_json:
        print_json(view)
        return
    verb = "Replaced" if existing is not None and replace else "Imported"
    console().print(Text(f"{verb} flow {view.name!r}.", style="green"))
    _print_flow(view)
    _print_call_hint(view)


@flow_app.command("export")
def flow_export(
    ref: RefArg,
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", help="yaml (the default) or json; --json implies json."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Print a flow's document, ready to edit and import again.

    With --output, the file is written and --json prints {id, name, format, output}.

    Examples:
      cardflow flow export "Offboard user" > offboard.yaml
      cardflow flow export "Offboard user" --format json --output offboard.json
    """
    as_json = want_json(json_output)
    with guard(as_json):
        if as_json and output is None and fmt is FileFormat.yaml:
            raise InvalidInput(
                "--json prints the document as JSON; drop --json to get YAML.", field="format"
            )
    chosen = fmt or (FileFormat.json if as_json and output is None else FileFormat.yaml)
    with open_cardflow(as_json) as cf:
        view = cf.flows.get(ref)
    text = dump_document(view.document, "json" if chosen is FileFormat.json else "yaml")
    if output is None:
        typer.echo(text, nl=False)
        return
    with guard(as_json):
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"--output {output}: cannot write it ({exc}).", field="output"
            ) from None
    if as_json:
        print_json(
            {"id": view.id, "name": view.name, "format": chosen.value, "output": str(output)}
        )
    else:
        console().print(Text(f"Exported flow {view.name!r} to {output} ({chosen.value})."))


@flow_app.command("list")
def flow_list(json_output: JsonOpt = False) -> None:
    """List flows: trigger, enabled, number of cards.

    Example: cardflow flow list --json
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        views = cf.flows.list()
    if as_json:
        print_json(views)
        return
    if not views:
        console().print("No flows yet. Import one with: cardflow flow import --help")
        return
    table = list_table(
        Column("NAME", ratio=1),
        Column("TRIGGER", overflow="fold"),
        kept("ENABLED", []),
        kept("CARDS", []),
        kept("ID", [view.id for view in views]),
    )
    for view in views:
        document = view.document
        enabled = "yes" if document.enabled else "no"
        table.add_row(
            *cells(view.name, _trigger_text(document), enabled, len(document.cards), view.id)
        )
    console().print(table)


@flow_app.command("show")
def flow_show(ref: RefArg, json_output: JsonOpt = False) -> None:
    """Show one flow: trigger, invoke URL and client token, and its cards.

    Example: cardflow flow show "Offboard user"
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.flows.get(ref)
    if as_json:
        print_json(view)
        return
    _print_flow(view)
    _print_cards(view.document)
    _print_call_hint(view)


@flow_app.command("run")
def flow_run(
    ref: RefArg,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help="The inputs as a JSON object (they become trigger.body)."),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input-file", help="Read the inputs JSON from a file ('-' = stdin)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run a flow now (manual trigger) and show the run; exit 1 if the run failed.

    Examples:
      cardflow flow run "Offboard user" --input '{"accountId": "5b10a284"}'
      cardflow flow run "Offboard user" --input-file inputs.json --json
    """
    as_json = want_json(json_output)
    with guard(as_json):
        inputs = _run_inputs(input_json, input_file)
    with open_cardflow(as_json) as cf:
        run = cf.run_flow(ref, inputs)
    if as_json:
        print_json(run)
    else:
        print_run(run)
    if run.status != "succeeded":
        raise typer.Exit(1)


def _set_enabled(ref: str, enabled: bool, note: str | None, json_output: bool) -> None:
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.flows.set_enabled(ref, enabled, actor=cli_actor(cf), note=note)
    if as_json:
        print_json(view)
    else:
        state = "Enabled" if enabled else "Disabled"
        console().print(Text(f"{state} flow {view.name!r} ({view.id})."))


@flow_app.command("enable")
def flow_enable(ref: RefArg, note: NoteOpt = None, json_output: JsonOpt = False) -> None:
    """Enable a flow (an API-endpoint flow answers at its invoke URL again).

    Example: cardflow flow enable "Offboard user"
    """
    _set_enabled(ref, True, note, json_output)


@flow_app.command("disable")
def flow_disable(ref: RefArg, note: NoteOpt = None, json_output: JsonOpt = False) -> None:
    """Disable a flow (an API-endpoint flow stops answering at its invoke URL).

    Example: cardflow flow disable "Offboard user" --note "Jira is down"
    """
    _set_enabled(ref, False, note, json_output)


@flow_app.command("versions")
def flow_versions(
    ref: RefArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="Show at most this many.")
    ] = 50,
    before: Annotated[
        int | None,
        typer.Option("--before", min=1, help="Only versions older than this number."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List a flow's saved versions, newest first: number, when, who, note.

    Examples:
      cardflow flow versions "Offboard user"
      cardflow flow versions "Offboard user" --before 40 --json
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        versions = cf.flows.versions(ref, before=before, limit=limit)
    if as_json:
        print_json(versions)
        return
    if not versions:
        console().print("No versions kept.")
        return
    table = list_table(
        kept("VERSION", []),
        kept("SAVED", [v.created_at.isoformat(timespec="seconds") for v in versions]),
        Column("BY", overflow="fold"),
        Column("NOTE", ratio=1),
    )
    for version in versions:
        table.add_row(
            *cells(
                version.number,
                version.created_at.isoformat(timespec="seconds"),
                version.actor,
                version.note,
            )
        )
    console().print(table)


@flow_app.command("diff")
def flow_diff(
    ref: RefArg,
    old: Annotated[int, typer.Argument(min=1, help="The older version's number.")],
    new: Annotated[int, typer.Argument(min=1, help="The newer version's number.")],
    fmt: Annotated[
        FileFormat, typer.Option("--format", help="Compare the YAML (default) or JSON export.")
    ] = FileFormat.yaml,
    json_output: JsonOpt = False,
) -> None:
    """Show what changed between two saved versions: a unified diff of their export.

    Example: cardflow flow diff "Offboard user" 3 4
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        found = cf.flows.diff(ref, old, new, "json" if fmt is FileFormat.json else "yaml")
    if as_json:
        print_json(found)
    elif not found.changed:
        console().print(f"Versions {old} and {new} are the same.")
    else:
        typer.echo(found.unified, nl=False)


@flow_app.command("restore")
def flow_restore(
    ref: RefArg,
    number: Annotated[int, typer.Argument(min=1, help="The version to restore.")],
    note: NoteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Save a kept version's document as the flow's newest version (checked as any save).

    Example: cardflow flow restore "Offboard user" 3 --note "Back to the old filter"
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.flows.restore(ref, number, actor=cli_actor(cf), note=note)
    if as_json:
        print_json(view)
    else:
        console().print(
            Text(
                f"Restored flow {view.name!r} to version {number}, saved as version "
                f"{view.saved_version}.",
                style="green",
            )
        )


@flow_app.command("delete")
def flow_delete(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a flow (asks first unless --yes).

    Example: cardflow flow delete "Offboard user" --yes
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.flows.get(ref)
        _common.confirm_delete("flow", view.name, view.id, yes)
        cf.flows.delete(view.id)
    if as_json:
        print_json({"deleted": True, "id": view.id, "name": view.name})
    else:
        console().print(Text(f"Deleted flow {view.name!r} ({view.id})."))


@flow_app.command("token")
def flow_token(
    ref: RefArg,
    regenerate: Annotated[
        bool,
        typer.Option("--regenerate", help="Make a new client token (the old one stops working)."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Print an API-endpoint flow's client token, or make a new one with --regenerate.

    The token is the only thing printed on stdout.

    Example: TOKEN=$(cardflow flow token "Offboard user" --regenerate)
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.flows.regenerate_token(ref) if regenerate else cf.flows.get(ref)
        if view.client_token is None:
            raise InvalidInput(
                f"Flow {view.name!r} has no client token: only API-endpoint flows with "
                "client_token security have one.",
                field="trigger.security",
            )
    if as_json:
        print_json({"id": view.id, "name": view.name, "client_token": view.client_token})
        return
    typer.echo(view.client_token)
    if sys.stderr.isatty():
        err_console().print(
            Text(
                "Callers send it as the clientToken query parameter or the x-api-client-token "
                "header.",
                style="dim",
            ),
            soft_wrap=True,
        )
