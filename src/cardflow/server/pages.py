"""The OAuth callback's result page."""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from cardflow.connections.authorization import CallbackOutcome
from cardflow.server.web import message_page


def callback_page(outcome: CallbackOutcome, *, logged_in: bool) -> HTMLResponse:
    return message_page(
        outcome.title,
        outcome.message,
        ok=outcome.ok,
        status_code=200 if outcome.ok else 400,
        connection=outcome.connection,
        back="/connections" if logged_in else None,
        back_label="Back to Connections",
    )
