"""Shared dependencies: the Cardflow object, the caller (an API token's or a web session's
user) and each route's rule: the least role that may call it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Protocol

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cardflow.access.roles import Caller, Role
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
    def authenticate_cached(self, token: str | None) -> Caller: ...
    def authenticate(self, token: str | None) -> Caller: ...


async def _authenticate(service: _Authenticates, token: str | None) -> Caller:
    """From memory when checked recently, else from the database (off the event loop)."""
    try:
        return service.authenticate_cached(token)
    except LookupError:
        return await asyncio.to_thread(service.authenticate, token)


async def session_caller(cf: Cardflow, token: str | None) -> Caller:
    """The web session's user, or Unauthorized."""
    return await _authenticate(cf.web_sessions, token)


def client_actor(request: Request) -> Actor:
    """Someone not yet known, at the client address the server sees (proxies' headers are
    not trusted: behind a proxy this is the proxy's address)."""
    return Actor("anonymous", address=request.client.host if request.client else None)


def act_as_session(request: Request, found: Caller) -> None:
    """Changes in this request are the web session's user's (for the audit log)."""
    current_actor.set(
        client_actor(request)
        .as_("web_session", found.via_id, "web session")
        .as_user(found.user_id, found.user_name)
    )


async def _caller(
    request: Request,
    cf: Cardflow,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    csrf: str | None,
    needs_csrf: bool,
) -> Caller:
    """Who is calling: an API token's user, or (from the web app) a session's.

    A session cookie alone is never enough for a state-changing request: it must come with
    the session's CSRF token in the X-CSRF-Token header, which another site cannot read.
    """
    # The actor is set in the request's context: the audit log reads it where a service
    # records a change (the request's task and the threads it hands work to share it).
    current_actor.set(client_actor(request))
    if credentials is None and SESSION_COOKIE in request.cookies:
        cookie = request.cookies[SESSION_COOKIE]
        found = await session_caller(cf, cookie)
        if needs_csrf and not csrf_matches(cookie, csrf):
            raise Forbidden(
                "This request needs the page's CSRF token (X-CSRF-Token); reload the page."
            )
        act_as_session(request, found)
        return found
    caller = await _authenticate(cf.api_tokens, credentials.credentials if credentials else None)
    current_actor.set(
        client_actor(request)
        .as_("api_token", caller.via_id, caller.token_name)
        .as_user(caller.user_id, caller.user_name)
    )
    return caller


def check_role(caller: Caller, needed: Role) -> Caller:
    if not caller.may(needed):
        raise Forbidden(
            f"This needs the {needed} role or higher; {caller.user_name!r} acts here as "
            f"{caller.role}."
        )
    return caller


class RequireRole:
    """A route's rule: the least role that may call it (``Depends(RequireRole(Role.builder))``).

    Every /api/v1 route has exactly one; the OpenAPI document shows it as ``x-min-role``.
    """

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        cf: CardflowDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        caller = await _caller(
            request,
            cf,
            credentials,
            csrf=request.headers.get(CSRF_HEADER),
            needs_csrf=request.method not in SAFE_METHODS,
        )
        return check_role(caller, self.role)

    async def check(self, request: Request) -> Caller:
        """The same check, for a request outside dependency injection."""
        return await self(request, await get_cardflow(request), await _bearer(request))


class RequireRoleNavigating(RequireRole):
    """For a GET the browser navigates to that still starts something (the Authorize
    button): with a session cookie, the CSRF token must be in the ``csrf`` query parameter,
    so another site cannot start it with a plain link."""

    async def __call__(
        self,
        request: Request,
        cf: CardflowDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        csrf: Annotated[
            str | None, Query(description="Web app only: the page's CSRF token.")
        ] = None,
    ) -> Caller:
        caller = await _caller(request, cf, credentials, csrf=csrf, needs_csrf=True)
        return check_role(caller, self.role)

    async def check(self, request: Request) -> Caller:
        return await self(
            request,
            await get_cardflow(request),
            await _bearer(request),
            request.query_params.get("csrf"),
        )


class RequireRoleUnlessPublic(RequireRole):
    """/metrics: the rule applies unless CARDFLOW_METRICS_PUBLIC=1 (then None)."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        cf: CardflowDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller | None:
        if cf.settings.metrics_public:
            return None
        return await super().__call__(request, cf, credentials)


def route_rule(dependant: Dependant) -> RequireRole | None:
    """The role rule among a route's dependencies (None: a public route)."""
    if isinstance(dependant.call, RequireRole):
        return dependant.call
    for sub in dependant.dependencies:
        found = route_rule(sub)
        if found is not None:
            return found
    return None


ViewerDep = Annotated[Caller, Depends(RequireRole(Role.viewer))]
BuilderDep = Annotated[Caller, Depends(RequireRole(Role.builder))]
AdminDep = Annotated[Caller, Depends(RequireRole(Role.admin))]
OwnerDep = Annotated[Caller, Depends(RequireRole(Role.owner))]
AdminNavigatingDep = Annotated[Caller, Depends(RequireRoleNavigating(Role.admin))]
MetricsCallerDep = Annotated[Caller | None, Depends(RequireRoleUnlessPublic(Role.viewer))]
