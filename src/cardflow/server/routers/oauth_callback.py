"""The OAuth callback: where providers send the browser back after consent."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cardflow.server.deps import CardflowDep, act_as_session
from cardflow.server.pages import callback_page
from cardflow.server.web import current_session

router = APIRouter(tags=["oauth"])


@router.get("/oauth/callback", response_class=HTMLResponse)
async def oauth_callback(request: Request, cf: CardflowDep) -> Response:
    """Checks the single-use state, exchanges the code and stores the tokens.

    A logged-in browser goes back to the Connections page, which shows the result; any
    other gets a page of its own (e.g. after `cardflow connection authorize`)."""
    params = {key: value for key, value in request.query_params.items()}
    current = await current_session(cf, request)
    logged_in = current is not None
    if current is not None:
        act_as_session(request, current[1])
    outcome = await cf.authorizations.complete(params)
    if logged_in and outcome.ok and outcome.connection is not None:
        return RedirectResponse(
            f"/connections?authorized={quote(outcome.connection.id)}", status_code=303
        )
    return callback_page(outcome, logged_in=logged_in)
