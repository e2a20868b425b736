"""The ``cardflow`` command: a thin Typer layer over the services the server uses.

Every command opens cardflow once, calls a service, prints the result (Rich for people,
``--json`` for scripts) and closes it. Expected errors (``CardflowError``) become one red
``error:`` line and an exit code: 2 for bad input, not found and conflicts, 1 otherwise.
Secrets are never read from a plain argument and never printed.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Union

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from cardflow import __version__
from cardflow.app import Cardflow
from cardflow.auth.base import AuthConfig
from cardflow.auth.registry import AUTH_TYPES, AuthType
from cardflow.cards.runner import CardResult
from cardflow.connections import ConnectionView
from cardflow.errors import CardflowError, ConfigurationError, Conflict, InvalidInput, NotFound
from cardflow.settings import Settings
from cardflow.store.db import Database

# Basic auth may legitimately have an empty password: asked for, but not required.
OPTIONAL_SECRETS = frozenset({"password"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

app = typer.Typer(
    name="cardflow",
    help="cardflow: call third-party HTTP APIs with stored, encrypted credentials.\n\n"
    "Settings come from CARDFLOW_* environment variables (CARDFLOW_HOME, "
    "CARDFLOW_DATABASE_URL, CARDFLOW_MASTER_KEY, ...).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    context_settings={"help_option_names": ["-h", "--help"]},
)
token_app = typer.Typer(help="Mint, list and revoke API tokens for /api/v1.", no_args_is_help=True)
connection_app = typer.Typer(
    help="Manage connections (an auth type and its encrypted secrets).", no_args_is_help=True
)
card_app = typer.Typer(help="Run a card once (Test this card).", no_args_is_help=True)
run_app = typer.Typer(help="Look at the run history.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the keys that encrypt secrets.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(connection_app, name="connection")
app.add_typer(card_app, name="card")
app.add_typer(run_app, name="run")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout (and nothing else).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="A non-secret config field (repeatable), e.g. --set username=bot.",
    ),
]
SecretEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-env",
        metavar="FIELD=ENVVAR",
        help="Read a secret field from an environment variable (repeatable).",
    ),
]
SecretStdinOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-stdin",
        metavar="FIELD",
        help="Read this secret field from one line of standard input "
        "(a hidden prompt when standard input is a terminal).",
    ),
]


class OnError(StrEnum):
    fail = "fail"
    continue_ = "continue"


# -- output ------------------------------------------------------------------------------


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


# ``cardflow --json COMMAND``: set by the root callback, which runs on every invocation.
_root_json: contextvars.ContextVar[bool] = contextvars.ContextVar("root_json", default=False)


def _want_json(flag: bool) -> bool:
    """``--json`` given to the command or to ``cardflow`` itself."""
    return flag or _root_json.get()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _exit_code(exc: CardflowError) -> int:
    return 2 if isinstance(exc, InvalidInput | NotFound | Conflict) else 1


def _fail(exc: CardflowError, as_json: bool) -> NoReturn:
    message = f"error: {exc.message}"
    if exc.field and exc.field not in exc.message:
        message += f" (field: {exc.field})"
    _err().print(Text(message, style="bold red"), soft_wrap=True)
    if as_json:
        _print_json({"error": exc.to_dict()})
    raise typer.Exit(_exit_code(exc))


@contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    """Turn expected errors into a message and an exit code, never a traceback."""
    try:
        yield
    except CardflowError as exc:
        _fail(exc, as_json)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = "CARDFLOW_" + str(first["loc"][0]).upper() if first["loc"] else "CARDFLOW_*"
        raise ConfigurationError(f"{name}: {first['msg']}", field=name) from None


@contextmanager
def _cardflow(as_json: bool, **overrides: Any) -> Iterator[Cardflow]:
    """One open cardflow for one command, closed afterwards; errors reported on the way out."""
    with _guard(as_json):
        cf = Cardflow(_settings(**overrides))
        try:
            yield cf
        finally:
            cf.close()


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _row(grid: Table, label: str, value: object) -> None:
    grid.add_row(label, Text("" if value is None else str(value)))


def _when(value: str | None) -> str | None:
    """An ISO timestamp, shortened for tables (``2024-05-01 12:00:00``)."""
    return value[:19].replace("T", " ") if value else value


def _fixed(header: str) -> Column:
    """A column that is never wrapped (ids, timestamps)."""
    return Column(header, no_wrap=True)


def _cells(*values: object) -> list[Text]:
    """Table cells as plain text: names and messages are never read as Rich markup."""
    return [Text("-" if value is None or value == "" else str(value)) for value in values]


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


# -- parsing arguments ---------------------------------------------------------------------


def _pairs(values: Sequence[str] | None, option: str, shape: str) -> list[tuple[str, str]]:
    pairs = []
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # Never echo the argument: it may be a secret typed in the wrong place.
            raise InvalidInput(f"{option} takes {shape} (an argument had no '=' or no name).")
        pairs.append((key.strip(), value))
    return pairs


def _secret_hint(field: str) -> str:
    return (
        f"pass it with --secret-stdin {field} (a hidden prompt on a terminal, or one line "
        f"piped to standard input) or --secret-env {field}=ENV_VAR"
    )


def _field_type(model: type[AuthConfig], key: str) -> tuple[set[Any], bool]:
    """The field's possible types (without None) and whether None is allowed."""
    info = model.model_fields.get(key)
    if info is None:
        return {str}, False
    annotation = info.annotation
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is Union
    args = set(typing.get_args(annotation)) if union else {annotation}
    return args - {type(None)}, type(None) in args


def _config_value(model: type[AuthConfig], key: str, value: str) -> Any:
    kinds, nullable = _field_type(model, key)
    if value == "" and nullable:
        return None  # --set scope= clears an optional field
    if kinds == {bool}:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InvalidInput(f"config.{key} must be true or false.", field=f"config.{key}")
    return value


def _read_secret_line(field: str) -> str:
    if _stdin_is_tty():
        value: str = typer.prompt(f"{field}", hide_input=True, err=True)
        return value
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput(
            f"--secret-stdin {field}: nothing on standard input "
            f"(pipe it in, e.g. printf '%s\\n' \"$SECRET\" | cardflow ...).",
            field=f"config.{field}",
        )
    if line.endswith("\n"):
        line = line[:-1]
        line = line.removesuffix("\r")
    return line


def _check_secret_field(kind: AuthType, field: str, option: str) -> None:
    secrets = kind.config.secret_fields
    if field not in secrets:
        which = ", ".join(secrets) if secrets else "none"
        raise InvalidInput(
            f"{option} {field}: not a secret field of a {kind.name} connection "
            f"(its secret fields: {which}); give other fields with --set.",
            field=f"config.{field}",
        )


def _config_patch(
    kind: AuthType,
    sets: Sequence[str] | None,
    secret_env: Sequence[str] | None,
    secret_stdin: str | None,
) -> dict[str, Any]:
    """The config given on the command line: --set for fields, secrets from env or stdin."""
    config: dict[str, Any] = {}
    for key, value in _pairs(sets, "--set", "KEY=VALUE"):
        if key in kind.config.secret_fields:
            raise InvalidInput(
                f"config.{key} is a secret and is never taken from a command-line argument "
                f"(shells and process lists keep those): {_secret_hint(key)}.",
                field=f"config.{key}",
            )
        config[key] = _config_value(kind.config, key, value)
    for field, variable in _pairs(secret_env, "--secret-env", "FIELD=ENVVAR"):
        _check_secret_field(kind, field, "--secret-env")
        if variable not in os.environ:
            raise InvalidInput(
                f"--secret-env {field}={variable}: the environment variable {variable} is not set.",
                field=f"config.{field}",
            )
        config[field] = os.environ[variable]
    if secret_stdin is not None:
        _check_secret_field(kind, secret_stdin, "--secret-stdin")
        config[secret_stdin] = _read_secret_line(secret_stdin)
    return config


def _ask_missing_secrets(kind: AuthType, config: dict[str, Any]) -> None:
    """Prompt (hidden) for each secret not given; without a terminal, fail naming it."""
    for field in kind.config.secret_fields:
        if field in config:
            continue
        optional = field in OPTIONAL_SECRETS
        if _stdin_is_tty():
            label = f"{kind.title} {field}" + (" (may be empty)" if optional else "")
            config[field] = typer.prompt(
                label,
                hide_input=True,
                err=True,
                default="" if optional else None,
                show_default=False,
            )
        elif not optional:
            raise InvalidInput(
                f"config.{field}: a {kind.name} connection needs this secret and standard "
                f"input is not a terminal to ask for it: {_secret_hint(field)}.",
                field=f"config.{field}",
            )


def _auth_type(name: str) -> AuthType:
    kind = AUTH_TYPES.get(name)
    if kind is None:
        raise InvalidInput(f"auth_type must be one of: {', '.join(AUTH_TYPES)}.", field="auth_type")
    return kind


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
    for key, value in _pairs(pairs, "--input", "KEY=VALUE"):
        inputs[key] = _input_value(value)
    return dict(inputs)


# -- top level ------------------------------------------------------------------------------


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
    _root_json.set(json_output)


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default CARDFLOW_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port to bind (default CARDFLOW_PORT, 8080)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run the web app and the REST API (/api/v1, OpenAPI at /docs).

    Example: cardflow serve --host 127.0.0.1 --port 8080
    """
    as_json = _want_json(json_output)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    with _cardflow(as_json, **overrides) as cf:  # checks the database and keys up front
        settings = cf.settings
        has_token = bool(cf.api_tokens.list())
    import uvicorn

    from cardflow.server.app import create_app

    with _guard(as_json):
        application = create_app(settings=settings)
    url = _base_url(settings.host, settings.port)
    if as_json:
        _print_json({"url": url, "public_url": settings.public_url, "api_token_exists": has_token})
    else:
        out = _out()
        out.print(Text.assemble("cardflow serving on ", (url, "bold")), soft_wrap=True)
        out.print(Text(f"REST API: {url}/api/v1   OpenAPI: {url}/docs"), soft_wrap=True)
        if not has_token:
            out.print(
                Text.assemble(
                    "No API token exists yet. Mint one for /api/v1 with: ",
                    ("cardflow token create --name NAME", "bold"),
                ),
                soft_wrap=True,
            )
    uvicorn.run(
        application, host=settings.host, port=settings.port, log_level=settings.log_level.lower()
    )


# -- tokens ---------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise the token by.")],
    json_output: JsonOpt = False,
) -> None:
    """Mint an API token and print it once (only its hash is stored).

    The token is the only thing printed on stdout.

    Example: TOKEN=$(cardflow token create --name ci)
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        token_id, token = cf.api_tokens.create(name)
    if as_json:
        _print_json({"id": token_id, "name": name.strip(), "token": token})
        return
    typer.echo(token)
    if sys.stderr.isatty():
        _err().print(
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
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        tokens = cf.api_tokens.list()
    if as_json:
        _print_json(tokens)
        return
    if not tokens:
        _out().print("No API tokens. Mint one with: cardflow token create --name NAME")
        return
    table = Table("NAME", _fixed("ID"), _fixed("CREATED"))
    for item in tokens:
        table.add_row(*_cells(item["name"], item["id"], _when(item["created_at"])))
    _out().print(table)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name or id.")],
    json_output: JsonOpt = False,
) -> None:
    """Revoke an API token: requests using it are refused from now on.

    Example: cardflow token revoke ci
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        cf.api_tokens.revoke(name)
    if as_json:
        _print_json({"revoked": name})
    else:
        _out().print(Text(f"Revoked API token {name!r}."))


# -- connections ----------------------------------------------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"set"}


def _show_value(value: Any) -> str:
    if _is_secret(value):
        return "set" if value["set"] else "not set"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _print_connection(view: ConnectionView, settings: Settings) -> None:
    grid = _grid()
    _row(grid, "name", view.name)
    _row(grid, "id", view.id)
    kind = AUTH_TYPES.get(view.auth_type)
    _row(grid, "auth type", f"{view.auth_type} ({kind.title})" if kind else view.auth_type)
    _row(grid, "status", view.status)
    if view.last_error:
        _row(grid, "last error", view.last_error)
    for key, value in view.config.items():
        _row(grid, f"config.{key}", _show_value(value))
    if view.auth_type == "oauth":
        _row(grid, "redirect URI", settings.public_url.rstrip("/") + "/oauth/callback")
    _row(grid, "created", view.created_at.isoformat())
    _row(grid, "updated", view.updated_at.isoformat())
    _out().print(grid)


def _connection_json(view: ConnectionView, settings: Settings) -> dict[str, Any]:
    data = view.to_dict()
    if view.auth_type == "oauth":
        data["redirect_uri"] = settings.public_url.rstrip("/") + "/oauth/callback"
    return data


_TYPES_HELP = ", ".join(AUTH_TYPES)


@connection_app.command("create")
def connection_create(
    name: Annotated[str, typer.Argument(help="A unique nickname, e.g. 'JIRA - Basic - bot'.")],
    auth_type: Annotated[str, typer.Option("--type", help=f"The auth type: {_TYPES_HELP}.")],
    sets: SetOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_stdin: SecretStdinOpt = None,
    json_output: JsonOpt = False,
) -> None:
    r"""Create a connection. Secrets never come from a plain argument.

    A secret not given with --secret-stdin or --secret-env is asked for with a hidden prompt;
    with no terminal to ask on, the command fails and says how to pass it.
    Fields (* secret): basic: username, password*
    custom: header_name, header_value*
    client_credentials: token_url, client_id, client_secret*, scope, token_auth_method

    Examples:
      cardflow connection create "JIRA - Basic - bot" --type basic \
        --set username=bot --secret-env password=JIRA_PASSWORD
      printf '%s\n' "$KEY" | cardflow connection create "Acme - key" --type custom \
        --set header_name=api_key --secret-stdin header_value
    """
    as_json = _want_json(json_output)
    with _guard(as_json):
        kind = _auth_type(auth_type)
        config = _config_patch(kind, sets, secret_env, secret_stdin)
        _ask_missing_secrets(kind, config)
    with _cardflow(as_json) as cf:
        view = cf.connections.create(name, kind.name, config)
        settings = cf.settings
    if as_json:
        _print_json(_connection_json(view, settings))
    else:
        _out().print(Text(f"Created connection {view.name!r}.", style="green"))
        _print_connection(view, settings)


@connection_app.command("list")
def connection_list(json_output: JsonOpt = False) -> None:
    """List connections (secrets show only as set / not set).

    Example: cardflow connection list --json
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        views = cf.connections.list()
        settings = cf.settings
    if as_json:
        _print_json([_connection_json(view, settings) for view in views])
        return
    if not views:
        _out().print("No connections yet. Create one with: cardflow connection create --help")
        return
    table = Table("NAME", _fixed("ID"), "TYPE", "STATUS", "SECRETS")
    for view in views:
        secrets = [f"{k}: {_show_value(v)}" for k, v in view.config.items() if _is_secret(v)]
        table.add_row(*_cells(view.name, view.id, view.auth_type, view.status, ", ".join(secrets)))
    _out().print(table)


@connection_app.command("show")
def connection_show(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    json_output: JsonOpt = False,
) -> None:
    """Show one connection (secrets show only as set / not set).

    Example: cardflow connection show "JIRA - Basic - bot"
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        view = cf.connections.get(ref)
        settings = cf.settings
    if as_json:
        _print_json(_connection_json(view, settings))
    else:
        _print_connection(view, settings)


@connection_app.command("update")
def connection_update(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    new_name: Annotated[str | None, typer.Option("--name", help="A new nickname.")] = None,
    auth_type: Annotated[
        str | None,
        typer.Option("--type", help="Change the auth type (give the new type's whole config)."),
    ] = None,
    sets: SetOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_stdin: SecretStdinOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a connection. Fields and secrets not given are kept.

    Example: cardflow connection update "JIRA - Basic - bot" --secret-env password=NEW_PASSWORD
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        if not (new_name or auth_type or sets or secret_env or secret_stdin):
            raise InvalidInput("Nothing to change: give --name, --type, --set or a secret option.")
        current = cf.connections.get(ref)
        kind = _auth_type(auth_type or current.auth_type)
        config = _config_patch(kind, sets, secret_env, secret_stdin)
        if kind.name != current.auth_type:
            _ask_missing_secrets(kind, config)
        view = cf.connections.update(
            current.id,
            name=new_name,
            auth_type=kind.name if kind.name != current.auth_type else None,
            config=config if config or kind.name != current.auth_type else None,
        )
        settings = cf.settings
    if as_json:
        _print_json(_connection_json(view, settings))
    else:
        _out().print(Text(f"Updated connection {view.name!r}.", style="green"))
        _print_connection(view, settings)


@connection_app.command("delete")
def connection_delete(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a connection and its secrets (asks first unless --yes).

    Example: cardflow connection delete "JIRA - Basic - bot" --yes
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        view = cf.connections.get(ref)
        if not yes:
            if not _stdin_is_tty():
                raise InvalidInput(
                    f"Not deleting connection {view.name!r}: standard input is not a terminal "
                    "to confirm; pass --yes.",
                    field="yes",
                )
            if not typer.confirm(f"Delete connection {view.name!r} ({view.id})?", err=True):
                _err().print("Not deleted.")
                raise typer.Exit(1)
        cf.connections.delete(view.id)
    if as_json:
        _print_json({"deleted": True, "id": view.id, "name": view.name})
    else:
        _out().print(Text(f"Deleted connection {view.name!r} ({view.id})."))


# -- cards ----------------------------------------------------------------------------------


def _print_body(out: Console, body: Any) -> None:
    if body is None or body == "":
        out.print(Text("(empty body)", style="dim"))
    elif isinstance(body, str):
        out.print(Text(body), soft_wrap=True)
    else:
        out.print_json(data=body, default=str)


def _print_card_result(card_id: str, result: CardResult) -> None:
    out = _out()
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
        _err().print(
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
                table.add_row(*_cells(key, value))
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
    as_json = _want_json(json_output)
    options: dict[str, Any] = {"on_error": on_error.value}
    if timeout is not None:
        options["timeout"] = timeout
    with _guard(as_json):
        inputs = _card_inputs(input_pairs, inputs_json, inputs_file)
    with _cardflow(as_json) as cf:
        result = cf.test_card(card_id, connection=connection, inputs=inputs, options=options)
    if as_json:
        _print_json(result.to_dict())
    else:
        _print_card_result(card_id, result)
    if not result.ok:
        raise typer.Exit(1)


# -- runs -----------------------------------------------------------------------------------


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("type") or "")
    return "" if error is None else str(error)


@run_app.command("list")
def run_list(
    flow_id: Annotated[str | None, typer.Option("--flow-id", help="Only this flow's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List recent runs, newest first (Test this card runs included).

    Example: cardflow run list --flow-id flw_123 --json
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        runs = cf.runs.list(flow_id=flow_id, limit=limit)
    if as_json:
        _print_json(runs)
        return
    if not runs:
        _out().print("No runs yet.")
        return
    table = Table(_fixed("ID"), "FLOW", "TRIGGER", "STATUS", _fixed("STARTED"), "ERROR")
    for run in runs:
        fields = (run["id"], run["flow_id"], run["trigger"], run["status"])
        table.add_row(*_cells(*fields, _when(run["started_at"]), _error_text(run["error"])))
    _out().print(table)


@run_app.command("show")
def run_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    json_output: JsonOpt = False,
) -> None:
    """Show one run and what each of its cards did.

    Example: cardflow run show run_123
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        run = cf.runs.get(run_id)
    if as_json:
        _print_json(run)
        return
    out = _out()
    grid = _grid()
    for key in ("id", "flow_id", "trigger", "status", "started_at", "ended_at"):
        _row(grid, key, run.get(key) or "-")
    if run.get("error"):
        _row(grid, "error", _error_text(run["error"]))
    out.print(grid)
    table = Table(
        "CARD", "TYPE", "STATUS", "MS", "HTTP", "ERROR", title="Cards", title_justify="left"
    )
    for card in run["cards"]:
        duration = card["duration_ms"]
        ms = None if duration is None else f"{duration:.1f}"
        table.add_row(
            *_cells(card["id"], card["card"], card["status"], ms, card["status_code"]),
            *_cells(_error_text(card["error"])),
        )
    out.print(table)
    for card in run["cards"]:
        for part in ("inputs", "outputs"):
            if card.get(part) is not None:
                out.print(Text(f"{card['id']} {part}:", style="bold"))
                out.print_json(data=card[part], default=str)


# -- keys and database ----------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate(json_output: JsonOpt = False) -> None:
    """Re-encrypt every secret and token under a new data key (safe while serving).

    Example: cardflow keys rotate
    """
    as_json = _want_json(json_output)
    with _cardflow(as_json) as cf:
        report = cf.keyring.rotate()
    if as_json:
        _print_json(asdict(report))
        return
    _out().print(
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
    as_json = _want_json(json_output)
    with _guard(as_json):
        database = Database(_settings().resolved_database_url)
        try:
            database.upgrade()
        finally:
            database.dispose()
    if as_json:
        _print_json({"database": database.safe_url, "upgraded": True})
    else:
        _out().print(Text(f"Database is up to date: {database.safe_url}"), soft_wrap=True)


def main() -> None:
    """Entry point of the ``cardflow`` console script."""
    app(prog_name="cardflow")
