"""``cardflow run``: the run history (flow runs and Test this card runs)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from cardflow.cli._common import (
    JsonOpt,
    cells,
    console,
    grid,
    grid_row,
    kept,
    list_table,
    open_cardflow,
    print_json,
    short_time,
    want_json,
)
from cardflow.runs.service import RunView
from cardflow.views import ErrorDetail

run_app = typer.Typer(help="Look at the run history.", no_args_is_help=True)


def error_text(error: ErrorDetail | None) -> str:
    return "" if error is None else error.message or error.type


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class RunTrigger(StrEnum):
    api_endpoint = "api_endpoint"
    manual = "manual"
    schedule = "schedule"
    card_test = "card_test"


@run_app.command("list")
def run_list(
    flow_id: Annotated[str | None, typer.Option("--flow-id", help="Only this flow's runs.")] = None,
    status: Annotated[
        RunStatus | None, typer.Option(help="Only runs in this status.", case_sensitive=False)
    ] = None,
    trigger: Annotated[
        RunTrigger | None, typer.Option(help="Only runs started so.", case_sensitive=False)
    ] = None,
    no_card_tests: Annotated[
        bool,
        typer.Option("--no-card-tests", help="Leave out the builder's Test this card runs."),
    ] = False,
    before: Annotated[
        str | None, typer.Option(help="A run id: the runs listed after it (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List recent runs, newest first (Test this card runs included unless --no-card-tests).

    Examples:
      cardflow run list --flow-id flw_123 --status failed --json
      cardflow run list --flow-id flw_123 --no-card-tests
      cardflow run list --before run_123   # the next page
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        runs = cf.runs.list(
            flow_id=flow_id,
            status=status.value if status else None,
            trigger=trigger.value if trigger else None,
            card_tests=not no_card_tests,
            before=before,
            limit=limit,
        )
        flows = [] if as_json else cf.flows.list()
    if as_json:
        print_json(runs)
        return
    if not runs:
        console().print("No runs yet.")
        return
    out = console()
    names = {view.id: view.name for view in flows}
    started = [short_time(run.started_at) for run in runs]
    # The error has the room that is left; on a narrow terminal it waits for `run show`.
    with_error = out.width >= 110
    table = list_table(
        kept("ID", [run.id for run in runs]),
        Column("FLOW", overflow="fold"),
        kept("TRIGGER", [run.trigger for run in runs]),
        kept("STATUS", [run.status for run in runs]),
        kept("STARTED", started),
        *([Column("ERROR", ratio=1)] if with_error else []),
    )
    for run, at in zip(runs, started, strict=True):
        flow = names.get(run.flow_id or "", run.flow_id)
        row = (run.id, flow, run.trigger, run.status, at)
        table.add_row(*cells(*row, *([error_text(run.error)] if with_error else [])))
    out.print(table)
    if not with_error and any(run.error for run in runs):
        out.print(Text("A failed run's error: cardflow run show ID (or a wider terminal)."))


@run_app.command("show")
def run_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    json_output: JsonOpt = False,
) -> None:
    """Show one run and what each of its cards did.

    Example: cardflow run show run_123
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        run = cf.runs.get(run_id)
    if as_json:
        print_json(run)
        return
    print_run(run)


@run_app.command("retry")
def run_retry(
    run_id: Annotated[str, typer.Argument(help="The failed run's id.")],
    original: Annotated[
        bool,
        typer.Option(
            "--original", help="Run the flow as the failed run had it, not as it is saved now."
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Retry a failed run from its failed card, with the earlier cards' outputs, and show
    the new run once it has ended (it names the first in retry_of).

    Example: cardflow run retry run_123
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        run = cf.retry_run(run_id, original=original, wait=cf.settings.max_run_seconds + 5)
    if as_json:
        print_json(run)
        return
    print_run(run)
    if run.status == "failed":
        raise typer.Exit(1)


def print_run(run: RunView) -> None:
    """A run, its cards and (when saved) their redacted inputs and outputs."""
    out = console()
    details = grid()
    times = run.model_dump(mode="json", include={"started_at", "ended_at"})
    for key, value in (
        ("id", run.id),
        ("flow_id", run.flow_id),
        ("flow_version", run.flow_version),
        ("trigger", run.trigger),
        ("status", run.status),
        ("started_at", times["started_at"]),
        ("ended_at", times["ended_at"]),
        ("retry_of", run.retry_of),
    ):
        grid_row(details, key, value or "-")
    for event in run.events:
        grid_row(details, event.type, event.message)
    if run.error:
        grid_row(details, "error", error_text(run.error))
    out.print(details)
    table = Table(
        "CARD", "TYPE", "STATUS", "MS", "HTTP", "ERROR", title="Cards", title_justify="left"
    )
    for card in run.cards:
        ms = None if card.duration_ms is None else f"{card.duration_ms:.1f}"
        http: object = card.status_code
        if card.pages is not None:  # a paginating card: the last page's status
            http = f"{card.status_code} ({card.pages} page{'' if card.pages == 1 else 's'})"
        table.add_row(
            *cells(card.id, card.card, card.status, ms, http),
            *cells(error_text(card.error)),
        )
    out.print(table)
    for card in run.cards:
        for part, data in (("inputs", card.inputs), ("outputs", card.outputs)):
            if data is not None:
                out.print(Text(f"{card.id} {part}:", style="bold"))
                out.print_json(data=data, default=str)
