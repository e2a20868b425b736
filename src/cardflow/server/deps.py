"""Shared dependencies: the Cardflow object and the API-token check."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cardflow.app import Cardflow

_bearer = HTTPBearer(auto_error=False, description="An API token from `cardflow token create`.")


async def get_cardflow(request: Request) -> Cardflow:
    # async: FastAPI would run a plain function in its thread pool, on every request
    cf: Cardflow = request.app.state.cardflow
    return cf


CardflowDep = Annotated[Cardflow, Depends(get_cardflow)]


async def require_token(
    cf: CardflowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The API token's id; 401 when missing or wrong."""
    token = credentials.credentials if credentials else None
    try:
        return cf.api_tokens.authenticate_cached(token)
    except LookupError:
        return await asyncio.to_thread(cf.api_tokens.authenticate, token)


TokenDep = Annotated[str, Depends(require_token)]
