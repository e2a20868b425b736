"""``cardflow connection``: create, list, show, update, delete and authorize connections.

Secrets show only as set / not set; how they are read is in ``connection_config``, how an
OAuth connection is authorized in ``authorize``.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cardflow.cli import _common
from cardflow.cli._common import (
    JsonOpt,
    cells,
    console,
    fixed,
    grid,
    grid_row,
    guard,
    open_cardflow,
    parse_pairs,
    print_json,
    want_json,
)
from cardflow.cli.authorize import connection_authorize
from cardflow.cli.connection_config import (
    FromFileOpt,
    SecretEnvOpt,
    SecretStdinOpt,
    SetOpt,
    ask_missing_secrets,
    auth_type_named,
    config_patch,
    secret_hint,
)
from cardflow.connections.presets import (
    FilledPreset,
    fill_preset,
    get_preset,
    preset_test_request,
    search_presets,
)
from cardflow.connections.service import ConnectionView, Rejection
from cardflow.credentials.base import AuthType
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import InvalidInput
from cardflow.net.hosts import normalize_allowed_hosts

connection_app = typer.Typer(
    help="Manage connections (an auth type and its encrypted secrets).", no_args_is_help=True
)

_TYPES_HELP = ", ".join(AUTH_TYPES)

AllowedHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        metavar="HOST",
        help="A host this connection's credentials may be sent to (repeatable): "
        "api.example.com, *.example.com (any name under it), each with an optional :port. "
        "None given: any host (the connection then carries a warning).",
    ),
]

TestRequestOpt = Annotated[
    str | None,
    typer.Option(
        "--test-request",
        metavar="'METHOD URL'",
        help="What `cardflow connection test` sends with the connection's auth: a method "
        "and an absolute URL, e.g. 'GET https://api.example.com/me', or a path under "
        "--base-url ('GET /me'); a URL alone: GET. With --preset, left out: the preset's.",
    ),
]


def _test_request(value: str | None) -> dict[str, str] | None:
    """'GET https://…' (or a URL alone) as the test request's fields."""
    if value is None:
        return None
    method, _, url = value.strip().partition(" ")
    if not url.strip():
        method, url = "GET", method
    return {"method": method, "url": url.strip()}


BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="Where cards' relative URLs (/user) resolve, e.g. https://api.github.com; "
        "its host must be among the allowed hosts.",
    ),
]


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and "set" in value


def _show_value(value: Any) -> str:
    if _is_secret(value):
        if not value["set"]:
            return "not set"
        if "subject" in value:  # a client certificate: what may be shown of it
            return (
                f"set ({value['subject']}, issued by {value['issuer']}, "
                f"valid until {value['not_after']}, SHA-256 {value['sha256']})"
            )
        return "set"
    if isinstance(value, str) and value.startswith("-----BEGIN"):
        count = value.count("-----BEGIN CERTIFICATE-----")
        return f"PEM, {count} certificate{'' if count == 1 else 's'}"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)  # a public JWK: copied as it is shown
    return str(value)


def _print_connection(view: ConnectionView) -> None:
    details = grid()
    grid_row(details, "name", view.name)
    grid_row(details, "id", view.id)
    kind = AUTH_TYPES.get(view.auth_type)
    auth_type = f"{view.auth_type} ({kind.title})" if kind else view.auth_type
    grid_row(details, "auth type", auth_type)
    grid_row(details, "status", view.status)
    if view.last_error:
        grid_row(details, "last error", view.last_error)
    if view.rejected:
        grid_row(details, "rejected", _show_rejection(view.rejected))
    for key, value in view.config.items():
        if key != "public_jwk" or value is None:
            grid_row(details, f"config.{key}", _show_value(value))
    grid_row(details, "allowed hosts", _show_hosts(view))
    if view.base_url:
        grid_row(details, "base URL", view.base_url)
    if view.test_request:
        grid_row(details, "test request", f"{view.test_request.method} {view.test_request.url}")
    if view.redirect_uri:
        grid_row(details, "redirect URI", view.redirect_uri)
    grid_row(details, "created", view.created_at.isoformat())
    grid_row(details, "updated", view.updated_at.isoformat())
    console().print(details)
    jwk = view.config.get("public_jwk")
    if jwk:  # one line, never wrapped, to copy whole into the provider's client settings
        console().print("public JWK (register it with the provider for private_key_jwt):")
        console().print(Text(json.dumps(jwk)), soft_wrap=True)
    _print_warnings(view)


def _show_rejection(rejected: Rejection) -> str:
    """``HTTP 401 at 2026-12-02T10:42:07+00:00 (flow 'Offboard', card 'user', run run_…)``"""
    where = [
        f"flow {rejected.flow_name or rejected.flow_id!r}" if rejected.flow_id else None,
        f"card {rejected.card_id!r}" if rejected.card_id else None,
        f"run {rejected.run_id}" if rejected.run_id else None,
    ]
    said = ", ".join(part for part in where if part)
    at = rejected.at.isoformat(timespec="seconds")
    return f"HTTP {rejected.status_code} at {at}" + (f" ({said})" if said else "")


def _show_hosts(view: ConnectionView) -> str:
    return ", ".join(view.allowed_hosts) if view.allowed_hosts else "any host"


def _print_warnings(view: ConnectionView) -> None:
    for warning in view.warnings:
        console().print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    if view.warnings and not view.allowed_hosts:
        console().print(
            Text(
                "Set them with: cardflow connection update "
                f"{shlex.quote(view.name)} --allowed-host HOST (and its secrets again)"
            ),
            soft_wrap=True,
        )


def _allowed_hosts(hosts: list[str] | None) -> list[str] | None:
    """--allowed-host values, checked before any secret is asked for."""
    if hosts is None:
        return None
    try:
        return normalize_allowed_hosts(hosts)
    except ValueError as exc:
        raise InvalidInput(
            f"--allowed-host: {exc}. Give a host such as api.example.com, "
            "*.example.com or 127.0.0.1:8443.",
            field="allowed_hosts",
        ) from None


def _reentry_hint(exc: InvalidInput, kind: AuthType, given: set[str]) -> None:
    """When the change needs a secret entered again, say how to give it on the command line."""
    field = (exc.field or "").removeprefix("config.")
    if field in kind.config.secret_fields and field not in given:
        exc.message = f"{exc.message} Run the same command again and {secret_hint(kind, field)}."
        exc.args = (exc.message,)


def _print_next_step(view: ConnectionView) -> None:
    if view.status == "needs_authorization":
        console().print(
            Text(
                "Next: register the redirect URI with the provider, then run: "
                f"cardflow connection authorize {shlex.quote(view.name)}"
            ),
            soft_wrap=True,
        )


def _fill(preset: str, params: list[str] | None) -> FilledPreset:
    """The preset with --param values; errors name --param, as typed here."""
    try:
        return fill_preset(get_preset(preset), dict(parse_pairs(params, "--param", "NAME=VALUE")))
    except InvalidInput as exc:
        exc.message = exc.message.replace("preset_params.", "--param ")
        exc.args = (exc.message,)
        raise


@connection_app.command("create")
def connection_create(
    name: Annotated[str, typer.Argument(help="A unique nickname, e.g. 'JIRA - Basic - bot'.")],
    auth_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "--auth-type",
            help=f"The auth type: {_TYPES_HELP} (may be left out with --preset).",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="ID",
            help="Start from a provider preset (cardflow connection presets): its auth type, "
            "URLs, scopes, allowed hosts and base URL; --set, --allowed-host and --base-url "
            "change them.",
        ),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME=VALUE",
            help="A value for one of the preset's placeholders (repeatable), e.g. "
            "--param okta_domain=dev-123456.okta.com.",
        ),
    ] = None,
    sets: SetOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_stdin: SecretStdinOpt = None,
    from_file: FromFileOpt = None,
    allowed_host: AllowedHostOpt = None,
    base_url: BaseUrlOpt = None,
    test_request: TestRequestOpt = None,
    json_output: JsonOpt = False,
) -> None:
    r"""Create a connection. Secrets never come from a plain argument.

    A secret not given with --secret-stdin, --secret-env or --from-file is asked for with a
    hidden prompt (PEM never is);
    with no terminal to ask on, the command fails and says how to pass it.
    Fields (* secret): basic: username, password*
    custom: header_name, header_value*
    bearer: token*
    query: param_name, param_value* (the key as ?param_name=…)
    digest: username, password* (HTTP Digest, MD5 or SHA-256)
    client_credentials: token_url, client_id, client_secret*, scope, token_auth_method,
    private_key*, key_id, revocation_url
    oauth: authorize_url, token_url, client_id, client_secret*, scope, pkce,
    token_auth_method, private_key*, key_id, revocation_url, token_response_path
    (then: cardflow connection authorize NAME)
    every type, mutual TLS: client_certificate*, client_key*, ca_certificate
    Give PEM (private_key, certificates) with --from-file FIELD=PATH. The two OAuth
    types' token_auth_method picks what authenticates the client: client_secret
    (client_secret_basic, client_secret_post), private_key (private_key_jwt: register
    the public_jwk shown with the provider) or client_certificate and client_key
    (tls_client_auth).
    Or start from a provider preset: --preset ID (see: cardflow connection presets).

    --allowed-host limits where the credentials may be sent (a card calling another host
    fails with host_not_allowed before anything is sent); without it, any host.
    --test-request 'GET https://…' is what `cardflow connection test NAME` sends.

    Examples:
      cardflow connection create "JIRA - Basic - bot" --type basic \
        --set username=bot --secret-env password=JIRA_PASSWORD \
        --allowed-host acme.atlassian.net
      printf '%s\n' "$KEY" | cardflow connection create "Acme - key" \
        --type custom --set header_name=api_key --secret-stdin header_value
      cardflow connection create "Weather - key" --type query \
        --set param_name=appid --secret-env param_value=WEATHER_KEY \
        --allowed-host api.weather.example
      cardflow connection create "Google - OAuth - me" --type oauth \
        --set authorize_url=https://accounts.google.com/o/oauth2/v2/auth \
        --set token_url=https://oauth2.googleapis.com/token --set client_id=ID \
        --set scope="openid email" --secret-env client_secret=GOOGLE_SECRET
      cardflow connection create "Okta - service" --type client_credentials \
        --set token_url=https://acme.okta.com/oauth2/v1/token --set client_id=ID \
        --set token_auth_method=private_key_jwt --from-file private_key=key.pem
      cardflow connection create "Bank - mTLS" --type none \
        --from-file client_certificate=client.pem --from-file client_key=client.key \
        --from-file ca_certificate=bank-ca.pem --allowed-host api.bank.example
      cardflow connection create "Okta - acme" --preset okta-custom \
        --param okta_domain=acme.okta.com --set client_id=0oa1 \
        --secret-env client_secret=OKTA_SECRET
    """
    as_json = want_json(json_output)
    with guard(as_json):
        hosts = _allowed_hosts(allowed_host)
        if preset is not None:
            filled = _fill(preset, params)
            if auth_type not in (None, filled.auth_type):
                raise InvalidInput(
                    f"--type: preset {preset!r} is {filled.auth_type}; leave --type out.",
                    field="auth_type",
                )
            auth_type = filled.auth_type
        elif params:
            raise InvalidInput("--param fills a preset's placeholders: give --preset too.")
        if auth_type is None:
            raise InvalidInput("Give --type (the auth type) or --preset.", field="auth_type")
        kind = auth_type_named(auth_type)
        config = config_patch(kind, sets, secret_env, secret_stdin, from_file)
        if preset is not None:
            config = {**filled.config, **config}
            hosts = hosts or filled.allowed_hosts
            base_url = filled.base_url if base_url is None else base_url
        probe = _test_request(test_request)
        if preset is not None and probe is None:
            probe = preset_test_request(filled, base_url)
        ask_missing_secrets(kind, config)
    with open_cardflow(as_json) as cf:
        view = cf.connections.create(name, kind.name, config, hosts, base_url, probe)
    if as_json:
        print_json(view)
    else:
        console().print(Text(f"Created connection {view.name!r}.", style="green"))
        _print_connection(view)
        _print_next_step(view)


@connection_app.command("presets")
def connection_presets(
    query: Annotated[
        str | None, typer.Argument(help="Words to search for (id, title, description).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the provider presets (a new connection's starting point), or search them.

    Examples:
      cardflow connection presets
      cardflow connection presets okta --json
    """
    as_json = want_json(json_output)
    with guard(as_json):
        found = search_presets(query)
    if as_json:
        print_json([preset.model_dump() for preset in found])
        return
    if not found:
        console().print(f"No preset matches {query!r}.")
        return
    table = Table(fixed("ID"), "SERVICE", "TYPE", "PLACEHOLDERS", "BASE URL")
    for preset in found:
        placeholders = ", ".join(
            p.name + (f" (default {p.default})" if p.default else "") for p in preset.placeholders
        )
        table.add_row(
            *cells(preset.id, preset.title, preset.auth_type, placeholders, preset.base_url or "")
        )
    console().print(table)
    console().print(
        Text(
            "Create one with: cardflow connection create NAME --preset ID "
            "[--param NAME=VALUE] [--set client_id=…] (secrets: --secret-env / --secret-stdin)",
        ),
        soft_wrap=True,
    )


@connection_app.command("list")
def connection_list(json_output: JsonOpt = False) -> None:
    """List connections (secrets show only as set / not set).

    Example: cardflow connection list --json
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        views = cf.connections.list()
    if as_json:
        print_json(views)
        return
    if not views:
        console().print("No connections yet. Create one with: cardflow connection create --help")
        return
    table = Table("NAME", fixed("ID"), "TYPE", "STATUS", "SECRETS", "ALLOWED HOSTS")
    for view in views:
        secrets = [f"{k}: {_show_value(v)}" for k, v in view.config.items() if _is_secret(v)]
        hosts = _show_hosts(view) + (" (!)" if view.warnings else "")
        state = view.status + (f"\nrejected {view.rejected.status_code}" if view.rejected else "")
        table.add_row(*cells(view.name, view.id, view.auth_type, state, ", ".join(secrets), hosts))
    console().print(table)
    unbound = [view.name for view in views if view.warnings and not view.allowed_hosts]
    if unbound:
        console().print(
            Text(
                f"warning (!): {len(unbound)} connection(s) send their credentials to any host "
                "a card names. Bind each to its service: cardflow connection update NAME "
                "--allowed-host HOST (and its secrets again).",
                style="yellow",
            ),
            soft_wrap=True,
        )


@connection_app.command("show")
def connection_show(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    json_output: JsonOpt = False,
) -> None:
    """Show one connection (secrets show only as set / not set).

    Example: cardflow connection show "JIRA - Basic - bot"
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.connections.get(ref)
    if as_json:
        print_json(view)
    else:
        _print_connection(view)


@connection_app.command("update")
def connection_update(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    new_name: Annotated[str | None, typer.Option("--name", help="A new nickname.")] = None,
    auth_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "--auth-type",
            help="Change the auth type (give the new type's whole config).",
        ),
    ] = None,
    sets: SetOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_stdin: SecretStdinOpt = None,
    from_file: FromFileOpt = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="HOST",
            help="Replace the allowed hosts with these (repeatable): api.example.com, "
            "*.example.com, each with an optional :port. Allowing a host the list did not "
            "allow needs the connection's secrets given again in the same command.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            metavar="URL",
            help="Where cards' relative URLs resolve (its host must be allowed); '' removes it.",
        ),
    ] = None,
    any_host: Annotated[
        bool,
        typer.Option(
            "--any-host",
            help="Clear the allowed hosts: the credentials may go to any host (needs the "
            "secrets given again).",
        ),
    ] = False,
    test_request: TestRequestOpt = None,
    no_test_request: Annotated[
        bool, typer.Option("--no-test-request", help="Remove the test request.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Change a connection. Fields and secrets not given are kept.

    Examples:
      cardflow connection update "JIRA - Basic - bot" --secret-env password=NEW_PASSWORD
      cardflow connection update "JIRA - Basic - bot" --allowed-host acme.atlassian.net \
        --allowed-host '*.acme.example' --secret-env password=JIRA_PASSWORD
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        if allowed_host and any_host:
            raise InvalidInput(
                "Give either --allowed-host (the new list) or --any-host (no list), not both.",
                field="allowed_hosts",
            )
        hosts = [] if any_host else _allowed_hosts(allowed_host)
        if test_request is not None and no_test_request:
            raise InvalidInput(
                "Give either --test-request or --no-test-request, not both.",
                field="test_request",
            )
        probe: dict[str, Any] = (
            {"test_request": _test_request(test_request)}
            if test_request is not None or no_test_request
            else {}
        )
        given = (new_name, auth_type, sets, secret_env, secret_stdin, from_file, probe)
        if not (any(given) or hosts is not None or base_url is not None):
            raise InvalidInput(
                "Nothing to change: give --name, --type, --set, --from-file, --allowed-host, "
                "--any-host, --base-url, --test-request, --no-test-request or a secret option."
            )
        current = cf.connections.get(ref)
        kind = auth_type_named(auth_type or current.auth_type)
        config = config_patch(kind, sets, secret_env, secret_stdin, from_file)
        if kind.name != current.auth_type:
            ask_missing_secrets(kind, config)
        try:
            view = cf.connections.update(
                current.id,
                name=new_name,
                auth_type=kind.name if kind.name != current.auth_type else None,
                config=config if config or kind.name != current.auth_type else None,
                allowed_hosts=hosts,
                base_url=base_url,
                **probe,
            )
        except InvalidInput as exc:
            _reentry_hint(exc, kind, set(config))
            raise
    if as_json:
        print_json(view)
    else:
        console().print(Text(f"Updated connection {view.name!r}.", style="green"))
        _print_connection(view)
        _print_next_step(view)


@connection_app.command("test")
def connection_test(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    json_output: JsonOpt = False,
) -> None:
    """Test a connection: send its test request with its auth, as a card would (allowed
    hosts, network policy, timeout, token refresh). Exits 1 unless the answer is 2xx; a
    401/403 is recorded as the connection's rejection. The response body is not shown.

    Example: cardflow connection test "GitHub - Bearer - bot"
    (set the request first: cardflow connection update NAME --test-request 'GET https://…')
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        result = cf.test_connection(ref)
    if as_json:
        print_json(result)
    else:
        details = grid()
        grid_row(details, "request", f"{result.request.method} {result.request.url}")
        grid_row(details, "status", "-" if result.status_code is None else str(result.status_code))
        grid_row(
            details, "time", "-" if result.elapsed_ms is None else f"{result.elapsed_ms:.0f} ms"
        )
        console().print(
            Text("OK" if result.ok else "FAILED", style="green" if result.ok else "red")
        )
        console().print(details)
        console().print(Text(result.message), soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


@connection_app.command("delete")
def connection_delete(
    ref: Annotated[str, typer.Argument(help="The connection's id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a connection and its secrets (asks first unless --yes).

    Example: cardflow connection delete "JIRA - Basic - bot" --yes
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.connections.get(ref)
        _common.confirm_delete("connection", view.name, view.id, yes)
        deleted = cf.connections.delete(view.id)
    if as_json:
        print_json(deleted)
        return
    console().print(Text(f"Deleted connection {view.name!r} ({view.id})."))
    revocation = deleted.revocation
    if revocation is not None and revocation.revoked:
        console().print(
            Text(f"Revoked its {' and '.join(revocation.tokens)} at the provider."),
            soft_wrap=True,
        )
    elif revocation is not None:
        console().print(
            Text(
                f"warning: its tokens could not be revoked at the provider "
                f"({revocation.error}); they stay valid there until they expire.",
                style="yellow",
            ),
            soft_wrap=True,
        )


connection_app.command("authorize")(connection_authorize)
