"""What every command shares: output, error handling, the ``--json`` option, opening cardflow.

Expected errors (``CardflowError``) become one red ``error:`` line and an exit code: 2 for
bad input, not found and conflicts, 1 otherwise.
"""

from __future__ import annotations

import contextvars
import getpass
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, ValidationError
from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from cardflow.app import Cardflow
from cardflow.audit.actor import Actor, acting_as, current_actor
from cardflow.errors import CardflowError, ConfigurationError, Conflict, InvalidInput, NotFound
from cardflow.settings import Settings

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout (and nothing else).")
]

# ``cardflow --json COMMAND``: set by the root callback, which runs on every invocation.
root_json: contextvars.ContextVar[bool] = contextvars.ContextVar("root_json", default=False)


def want_json(flag: bool) -> bool:
    """``--json`` given to the command or to ``cardflow`` itself."""
    return flag or root_json.get()


# -- output ------------------------------------------------------------------------------


def console() -> Console:
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print data as JSON; views (one, or a list) as the REST API shows them."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [
            item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data
        ]
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def grid() -> Table:
    """Two columns, label and value, for showing one thing."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def grid_row(table: Table, label: str, value: object) -> None:
    table.add_row(label, Text("" if value is None else str(value)))


def short_time(value: datetime | None) -> str | None:
    """A time, shortened for tables (``2024-05-01 12:00:00``)."""
    return value.isoformat()[:19].replace("T", " ") if value else None


def fixed(header: str) -> Column:
    """A column that is never wrapped (ids, timestamps)."""
    return Column(header, no_wrap=True)


def kept(header: str, values: Sequence[object]) -> Column:
    """A column shown whole, never wrapped nor cut (ids, statuses, times): the other
    columns wrap around it."""
    widest = max([len(header), *(len(str(v)) for v in values if v is not None)])
    return Column(header, no_wrap=True, min_width=widest)


def list_table(*columns: Column | str) -> Table:
    """A list as a light table (a rule under the header, no boxes): it fits 80 columns."""
    return Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def cells(*values: object) -> list[Text]:
    """Table cells as plain text: names and messages are never read as Rich markup."""
    return [Text("-" if value is None or value == "" else str(value)) for value in values]


# -- errors ------------------------------------------------------------------------------


def exit_code(exc: CardflowError) -> int:
    return 2 if isinstance(exc, InvalidInput | NotFound | Conflict) else 1


def _said(exc: CardflowError) -> str:
    if exc.field and exc.field not in exc.message:
        return f"{exc.message} (field: {exc.field})"
    return exc.message


def fail(exc: CardflowError, as_json: bool) -> NoReturn:
    problems = exc.problems if isinstance(exc, InvalidInput) else ()
    if problems:
        lines = [f"error: {len(problems)} problems:", *(f"  - {_said(p)}" for p in problems)]
        err_console().print(Text("\n".join(lines), style="bold red"), soft_wrap=True)
    else:
        err_console().print(Text(f"error: {_said(exc)}", style="bold red"), soft_wrap=True)
    if as_json:
        print_json({"error": exc.to_dict()})
    raise typer.Exit(exit_code(exc))


@contextmanager
def guard(as_json: bool) -> Iterator[None]:
    """Turn expected errors into a message and an exit code, never a traceback."""
    try:
        yield
    except CardflowError as exc:
        fail(exc, as_json)


# -- opening cardflow --------------------------------------------------------------------


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = "CARDFLOW_" + str(first["loc"][0]).upper() if first["loc"] else "CARDFLOW_*"
        raise ConfigurationError(f"{name}: {first['msg']}", field=name) from None


def cli_actor() -> Actor:
    """Who runs a command, for the audit log: the CLI, as the host's user, on the host."""
    try:
        user: str | None = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor the password file
        user = None
    return Actor("cli", name=user, address=f"cli@{socket.gethostname()}")


@contextmanager
def open_cardflow(as_json: bool, **overrides: Any) -> Iterator[Cardflow]:
    """One open cardflow for one command, closed afterwards; errors reported on the way
    out. What the command changes, the audit log records as the CLI's doing."""
    with guard(as_json), acting_as(cli_actor()):
        cf = Cardflow(load_settings(**overrides))
        try:
            act_as_owner(cf)
            yield cf
        finally:
            cf.close()


def act_as_owner(cf: Cardflow) -> None:
    """The CLI runs on the host, with the database and the master key: as the owner (the
    first one, created on first use), whom its changes name."""
    owner = cf.users.owner()
    current_actor.set(current_actor.get().as_user(owner.id, owner.name))


# -- input -------------------------------------------------------------------------------


def stdin_is_tty() -> bool:
    """Whether a prompt can be shown (callers say ``_common.stdin_is_tty()``: tests patch it)."""
    return sys.stdin.isatty()


def parse_pairs(values: Sequence[str] | None, option: str, shape: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` arguments of a repeatable option, as pairs."""
    pairs = []
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # Never echo the argument: it may be a secret typed in the wrong place.
            raise InvalidInput(f"{option} takes {shape} (an argument had no '=' or no name).")
        pairs.append((key.strip(), value))
    return pairs


def confirm_delete(kind: str, name: str, item_id: str, yes: bool) -> None:
    """Ask before deleting (refusing without a terminal unless --yes); exit 1 on "no"."""
    if yes:
        return
    if not stdin_is_tty():
        raise InvalidInput(
            f"Not deleting {kind} {name!r}: standard input is not a terminal to confirm; "
            "pass --yes.",
            field="yes",
        )
    if not typer.confirm(f"Delete {kind} {name!r} ({item_id})?", err=True):
        err_console().print("Not deleted.")
        raise typer.Exit(1)
