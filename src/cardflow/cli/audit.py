"""``cardflow audit``: read the audit log (who changed what, when, from where)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.text import Text

from cardflow.audit.log import MAX_LIMIT, AuditEventView, AuditFilter
from cardflow.cli._common import (
    JsonOpt,
    cells,
    console,
    kept,
    list_table,
    open_cardflow,
    print_json,
    short_time,
    want_json,
)

audit_app = typer.Typer(help="Read the audit log.", no_args_is_help=True)

ActionOpt = Annotated[
    str | None,
    typer.Option(help="An action (connection.updated) or its first part (connection)."),
]
TargetOpt = Annotated[str | None, typer.Option(help="The target's id or name.")]
ActorOpt = Annotated[
    str | None,
    typer.Option(help="The actor's id, name or kind (api_token, cli, …), or its user's."),
]
SinceOpt = Annotated[datetime | None, typer.Option(help="At or after this time (UTC).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Before this time (UTC).")]


def _who(event: AuditEventView) -> str:
    actor = event.actor
    named = actor.name or actor.id
    text = f"{actor.kind} {named}" if named else actor.kind
    return f"{text} ({actor.user_name})" if actor.user_name else text


def _what(event: AuditEventView) -> str:
    if event.target is None:
        return ""
    return event.target.name or event.target.id or event.target.type


def _changes(event: AuditEventView) -> str:
    said = []
    for change in event.changes:
        if change.get("changed"):
            said.append(f"{change['field']} changed")
        else:
            said.append(f"{change['field']}: {change.get('old')!r} -> {change.get('new')!r}")
    return "; ".join(said)


@audit_app.command("list")
def audit_list(
    action: ActionOpt = None,
    target: TargetOpt = None,
    actor: ActorOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    before: Annotated[
        int | None, typer.Option(min=1, help="An entry id: the entries after it (next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many.")] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List audit log entries, newest first.

    Examples:
      cardflow audit list --action connection --since 2026-01-01
      cardflow audit list --actor cli --json
    """
    as_json = want_json(json_output)
    where = AuditFilter(action=action, target=target, actor=actor, since=since, until=until)
    with open_cardflow(as_json) as cf:
        events = cf.audit.list(where, before=before, limit=limit)
    if as_json:
        print_json(events)
        return
    if not events:
        console().print("No audit log entries match.")
        return
    times = [short_time(e.at) for e in events]
    table = list_table(
        kept("ID", [e.id for e in events]),
        kept("AT", times),
        kept("ACTION", [e.action for e in events]),
        "WHO",
        "FROM",
        "TARGET",
        "CHANGES",
    )
    for event, at in zip(events, times, strict=True):
        table.add_row(
            *cells(event.id, at, event.action, _who(event), event.address, _what(event)),
            Text(_changes(event) or "-"),
        )
    console().print(table)


@audit_app.command("export")
def audit_export(
    action: ActionOpt = None,
    target: TargetOpt = None,
    actor: ActorOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Print every audit log entry (filtered as ``list`` is), oldest first, as JSON lines.

    Example: cardflow audit export > audit.jsonl
    """
    where = AuditFilter(action=action, target=target, actor=actor, since=since, until=until)
    with open_cardflow(False) as cf:
        for event in cf.audit.export(where):
            typer.echo(event.model_dump_json())
