"""A connection's config from the command line: ``--set`` fields, secrets from an
environment variable, standard input or a hidden prompt, never from a plain argument;
``--from-file`` reads any field (a PEM key or certificate) from a file."""

from __future__ import annotations

import os
import sys
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Union

import annotated_types
import typer

from cardflow.cli import _common
from cardflow.cli._common import parse_pairs
from cardflow.credentials.base import AuthConfig, AuthType
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import InvalidInput

# Basic auth may legitimately have an empty password: asked for, but not required.
OPTIONAL_SECRETS = frozenset({"password"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

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

FromFileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--from-file",
        metavar="FIELD=PATH",
        help="Read a config field, secret or not, from a file, whole (repeatable): PEM "
        "keys and certificates, e.g. --from-file private_key=key.pem.",
    ),
]
# A file read for a field is at most the field's own max_length (a CA bundle: 512 KiB), or
# this for a field without one.
MAX_FIELD_FILE_BYTES = 64 * 1024


def auth_type_named(name: str) -> AuthType:
    kind = AUTH_TYPES.get(name)
    if kind is None:
        raise InvalidInput(f"auth_type must be one of: {', '.join(AUTH_TYPES)}.", field="auth_type")
    return kind


def config_patch(
    kind: AuthType,
    sets: Sequence[str] | None,
    secret_env: Sequence[str] | None,
    secret_stdin: str | None,
    from_file: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The config given on the command line: --set for fields, secrets from env or stdin,
    any field from a file."""
    config: dict[str, Any] = {}
    for key, value in parse_pairs(sets, "--set", "KEY=VALUE"):
        if key in kind.config.secret_fields and value.startswith("@"):
            raise InvalidInput(
                f"config.{key} is a secret: read it from a file with "
                f"--from-file {key}={value[1:] or 'PATH'}.",
                field=f"config.{key}",
            )
        if key in kind.config.secret_fields:
            raise InvalidInput(
                f"config.{key} is a secret and is never taken from a command-line argument "
                f"(shells and process lists keep those): {secret_hint(kind, key)}.",
                field=f"config.{key}",
            )
        config[key] = _config_value(kind.config, key, value)
    for field, variable in parse_pairs(secret_env, "--secret-env", "FIELD=ENVVAR"):
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
    for field, path in parse_pairs(from_file, "--from-file", "FIELD=PATH"):
        config[field] = _read_field_file(kind, field, path)
    return config


def _read_field_file(kind: AuthType, field: str, path: str) -> str:
    if field not in kind.config.model_fields:
        raise InvalidInput(
            f"--from-file {field}: not a config field of a {kind.name} connection.",
            field=f"config.{field}",
        )
    limit = _file_limit(kind.config, field)
    try:
        with open(os.path.expanduser(path), "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(
            f"--from-file {field}: cannot read {path} ({exc.strerror or exc}).",
            field=f"config.{field}",
        ) from None
    if len(data) > limit:
        raise InvalidInput(
            f"--from-file {field}: {path} is larger than {limit:,} bytes.",
            field=f"config.{field}",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"--from-file {field}: {path} is not UTF-8 text (give PEM, not DER).",
            field=f"config.{field}",
        ) from None
    # A file's last line break is not part of a one-line value (a PEM keeps its own).
    return text if "\n" in text.rstrip("\r\n") else text.rstrip("\r\n")


def _file_limit(model: type[AuthConfig], field: str) -> int:
    """The most a file for ``field`` may hold: the field's max_length, or 64 KiB."""
    for rule in model.model_fields[field].metadata:
        if isinstance(rule, annotated_types.MaxLen):
            return int(rule.max_length)
    return MAX_FIELD_FILE_BYTES


def ask_missing_secrets(kind: AuthType, config: dict[str, Any]) -> None:
    """Prompt (hidden) for each secret not given that the config's rules need (a client
    secret with a client_secret_* method, a private key with private_key_jwt, the client
    certificate and key with tls_client_auth), and for an optional Basic password; without
    a terminal, fail naming it. PEM is never prompted for: it spans lines."""
    model = kind.config
    for field in model.secret_fields:
        optional = field in OPTIONAL_SECRETS
        if field in config or not (optional or model.field_required(field, config)):
            continue
        if field in model.pem_fields:
            rule = model.required_when.get(field) or model.applies_when.get(field)
            why = f" with {rule[0]}={config.get(rule[0])}" if rule else ""
            raise InvalidInput(
                f"config.{field}: a {kind.name} connection{why} needs it: "
                f"{secret_hint(kind, field)} (or --secret-stdin {field} < file.pem).",
                field=f"config.{field}",
            )
        if _common.stdin_is_tty():
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
                f"input is not a terminal to ask for it: {secret_hint(kind, field)}.",
                field=f"config.{field}",
            )


def secret_hint(kind: AuthType, field: str) -> str:
    if field in kind.config.pem_fields:
        return f"pass it with --from-file {field}=PATH (a PEM file)"
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
    if _common.stdin_is_tty():
        value: str = typer.prompt(f"{field}", hide_input=True, err=True)
        return value
    line = sys.stdin.readline()
    if line.startswith("-----BEGIN "):  # a PEM block: read it up to its END line
        lines = [line]
        while not line.startswith("-----END ") and len(lines) < 1000:
            line = sys.stdin.readline()
            if not line:
                break
            lines.append(line)
        return "".join(lines)
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
