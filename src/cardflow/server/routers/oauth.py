"""The OAuth callback: where providers send the browser back after consent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cardflow.server.deps import CardflowDep
from cardflow.server.pages import callback_page

router = APIRouter(tags=["oauth"])


@router.get("/oauth/callback", response_class=HTMLResponse)
async def oauth_callback(request: Request, cf: CardflowDep) -> HTMLResponse:
    """Checks the single-use state, exchanges the code and stores the tokens."""
    params = {key: value for key, value in request.query_params.items()}
    return callback_page(await cf.authorizations.complete(params))
