"""Shared dependencies: the Cardflow object and the caller check (API token or web session)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Protocol

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cardflow.access.web_sessions import csrf_matches
from cardflow.app import Cardflow
from cardflow.audit.actor import Actor, current_actor
from cardflow.errors import Forbidden

SESSION_COOKIE = "cardflow_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API token from `cardflow token create`.")


async def get_cardflow(request: Request) -> Cardflow:
    # async: FastAPI would run a plain function in its thread pool, on every request
    cf: Cardflow = request.app.state.cardflow
    return cf


CardflowDep = Annotated[Cardflow, Depends(get_cardflow)]


class _Authenticates(Protocol):
    def authenticate_cached(self, token: str | None) -> str: ...
    def authenticate(self, token: str | None) -> str: ...


async def _authenticate(service: _Authenticates, token: str | None) -> str:
    """From memory when checked recently, else from the database (off the event loop)."""
    try:
        return service.authenticate_cached(token)
    except LookupError:
        return await asyncio.to_thread(service.authenticate, token)


async def session_id(cf: Cardflow, token: str | None) -> str:
    """The web session's id, or Unauthorized."""
    return await _authenticate(cf.web_sessions, token)


def client_actor(request: Request) -> Actor:
    """Someone not yet known, at the client address the server sees (proxies' headers are
    not trusted: behind a proxy this is the proxy's address)."""
    return Actor("anonymous", address=request.client.host if request.client else None)


def act_as_session(request: Request, found: str) -> None:
    """Changes in this request are the web session's (for the audit log)."""
    current_actor.set(client_actor(request).as_("web_session", found, "web session"))


async def _caller(
    request: Request,
    cf: Cardflow,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    csrf: str | None,
    needs_csrf: bool,
) -> str:
    # The actor is set in the request's context: the audit log reads it where a service
    # records a change (the request's task and the threads it hands work to share it).
    current_actor.set(client_actor(request))
    if credentials is None and SESSION_COOKIE in request.cookies:
        cookie = request.cookies[SESSION_COOKIE]
        found = await session_id(cf, cookie)
        if needs_csrf and not csrf_matches(cookie, csrf):
            raise Forbidden(
                "This request needs the page's CSRF token (X-CSRF-Token); reload the page."
            )
        act_as_session(request, found)
        return found
    token_id = await _authenticate(cf.api_tokens, credentials.credentials if credentials else None)
    current_actor.set(client_actor(request).as_("api_token", token_id))
    return token_id


async def require_token(
    request: Request,
    cf: CardflowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who is calling: an API token's id, or (from the web app) a session's id.

    A session cookie alone is never enough for a state-changing request: it must come with
    the session's CSRF token in the X-CSRF-Token header, which another site cannot read.
    """
    return await _caller(
        request,
        cf,
        credentials,
        csrf=request.headers.get(CSRF_HEADER),
        needs_csrf=request.method not in SAFE_METHODS,
    )


async def require_token_navigating(
    request: Request,
    cf: CardflowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    csrf: Annotated[str | None, Query(description="Web app only: the page's CSRF token.")] = None,
) -> str:
    """For a GET the browser navigates to that still starts something (the Authorize
    button): with a session cookie, the CSRF token must be in the ``csrf`` query parameter,
    so another site cannot start it with a plain link."""
    return await _caller(request, cf, credentials, csrf=csrf, needs_csrf=True)


TokenDep = Annotated[str, Depends(require_token)]
NavigationTokenDep = Annotated[str, Depends(require_token_navigating)]


async def require_actor(
    request: Request,
    cf: CardflowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """:func:`require_token`, and who the caller is for the record of a change (the web
    app's session, or an API token with its name)."""
    await require_token(request, cf, credentials)
    actor = current_actor.get()
    if actor.kind == "api_token" and actor.name is None and actor.id is not None:
        name = await asyncio.to_thread(cf.api_tokens.name_of, actor.id)
        actor = replace(actor, name=name)
        current_actor.set(actor)
    return actor


ActorDep = Annotated[Actor, Depends(require_actor)]


async def authenticate_request(request: Request) -> str:
    """What :func:`require_token` checks, for a request outside dependency injection."""
    return await require_token(request, await get_cardflow(request), await _bearer(request))
