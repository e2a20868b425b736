"""``cardflow connection authorize``: authorize an OAuth connection from a terminal.

The command prints the provider URL to open. The provider sends the browser back to the
running server's /oauth/callback, which stores the tokens; meanwhile the command polls the
connection until it is ready, fails, or the time is up.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from rich.text import Text

from cardflow.app import Cardflow
from cardflow.cli._common import JsonOpt, console, err_console, open_cardflow, want_json
from cardflow.connections.authorization import STATE_LIFETIME
from cardflow.connections.service import ConnectionView

POLL_SECONDS = 1.0
# Waiting longer than the state lives is pointless: the link no longer works by then.
LINK_SECONDS = int(STATE_LIFETIME.total_seconds())

Outcome = Literal["ready", "error", "changed", "timeout"]


@dataclass(frozen=True)
class _Waited:
    outcome: Outcome
    view: ConnectionView


def connection_authorize(
    ref: Annotated[str, typer.Argument(help="The oauth connection's id or name.")],
    timeout: Annotated[
        int,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=1,
            max=LINK_SECONDS,
            help="How long to wait for the provider's answer (the link expires after "
            f"{LINK_SECONDS // 60} minutes).",
        ),
    ] = LINK_SECONDS,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the URL and exit without waiting.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Authorize an OAuth connection: print the URL to open, then wait until it is ready.

    Register the redirect URI it shows with the provider first. The provider
    sends the browser back to CARDFLOW_PUBLIC_URL/oauth/callback, where
    cardflow serve must be running.

    Exit code 0 once the connection is ready (at once with --no-wait), 1 when
    the authorization failed or did not arrive in time, 2 for bad input, 130
    on Ctrl-C.

    --json prints one JSON object per line: {authorize_url, redirect_uri,
    connection_id}, then, when waiting, {status, connection_id, message}
    with status ready, error, changed or timeout.

    Example: cardflow connection authorize "Google - OAuth - me"
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        before = cf.connections.get(ref)
        found = cf.connections.resolve(before.id)  # the state begin() makes is bound to it
        version = found[1] if found else None
        url = cf.authorizations.begin(before.id)
        redirect_uri = cf.authorizations.redirect_uri
        if as_json:
            _print_json_line(
                {"authorize_url": url, "redirect_uri": redirect_uri, "connection_id": before.id}
            )
        else:
            _print_instructions(before, url, redirect_uri, cf.settings.public_url, no_wait)
        if no_wait:
            return
        try:
            waited = _wait(cf, before, version, timeout)
        except KeyboardInterrupt:
            err_console().print(
                Text(
                    "Stopped waiting. The link keeps working until it expires; check the "
                    f"connection with: cardflow connection show {shlex.quote(before.name)}"
                ),
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
    message = _message(waited, timeout, redirect_uri)
    if as_json:
        _print_json_line({"status": waited.outcome, "connection_id": before.id, "message": message})
    if waited.outcome == "ready":
        if not as_json:
            console().print(Text(message, style="green"), soft_wrap=True)
        return
    err_console().print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    raise typer.Exit(1)


def _print_json_line(data: dict[str, Any]) -> None:
    # One object per line: a script can read the URL while the command is still waiting.
    typer.echo(json.dumps(data, default=str, ensure_ascii=False))


def _print_instructions(
    view: ConnectionView, url: str, redirect_uri: str, public_url: str, no_wait: bool
) -> None:
    out = console()
    out.print(
        Text.assemble("Register this redirect URI with the provider: ", (redirect_uri, "bold")),
        soft_wrap=True,
    )
    out.print(
        Text(
            f"Open this URL in a browser to authorize {view.name!r} "
            f"(it works once, within {LINK_SECONDS // 60} minutes):"
        ),
        soft_wrap=True,
    )
    typer.echo(url)  # alone on its line, never wrapped or styled: it is copied as it is
    out.print(
        Text(
            f"The provider sends the browser back to {redirect_uri}: cardflow serve must be "
            f"running at CARDFLOW_PUBLIC_URL ({public_url}) to receive it."
        ),
        soft_wrap=True,
    )
    if no_wait:
        out.print(
            Text(f"Then check with: cardflow connection show {shlex.quote(view.name)}"),
            soft_wrap=True,
        )


def _wait(cf: Cardflow, before: ConnectionView, version: int | None, timeout: float) -> _Waited:
    """Poll the connection until an authorization newer than ``before`` lands, it fails,
    the connection is changed (which voids the link) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    with err_console().status(_waiting(timeout)) as spinner:
        while True:
            # Version first: a successful callback moves it too, and is then seen as ready.
            found = cf.connections.resolve(before.id)
            view = cf.connections.get(before.id)
            since = view.updated_at > before.updated_at  # not an earlier authorization
            if since and view.status == "ready":
                return _Waited("ready", view)
            if since and view.status == "error":
                return _Waited("error", view)
            if found is not None and version is not None and found[1] != version:
                return _Waited("changed", view)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _Waited("timeout", view)
            spinner.update(_waiting(remaining))
            _pause(min(POLL_SECONDS, remaining))


def _waiting(remaining: float) -> str:
    return f"Waiting for the provider's answer ({remaining:.0f} s left; Ctrl-C to stop)"


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _message(waited: _Waited, timeout: float, redirect_uri: str) -> str:
    view = waited.view
    again = f"cardflow connection authorize {shlex.quote(view.name)}"
    if waited.outcome == "ready":
        return f"Connection {view.name!r} is ready."
    if waited.outcome == "error":
        return (
            f"Connection {view.name!r} failed: {view.last_error or 'no detail given'}. Fix its "
            f"settings (cardflow connection update) and run {again} again."
        )
    if waited.outcome == "changed":
        return (
            f"Connection {view.name!r} was changed while waiting, so this link no longer works: "
            f"run {again} again."
        )
    return (
        f"No authorization arrived for {view.name!r} within {timeout:g} s. Check that "
        f"cardflow serve is running and reachable at {redirect_uri}, and what the browser "
        f"showed after the provider's page; then run {again} again for a new link."
    )
