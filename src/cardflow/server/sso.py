"""Single sign-on pages: ``GET /sso/login`` sends the browser to the OpenID Connect
provider, ``GET /sso/callback`` comes back from it and opens a web session, as a login link
does (see :mod:`cardflow.access.sso`)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from cardflow.access.sso import CALLBACK_PATH, LOGIN_LIFETIME, SsoFailed
from cardflow.access.web_sessions import SESSION_LIFETIME
from cardflow.server.deps import SESSION_COOKIE, CardflowDep
from cardflow.server.web import message_page

log = logging.getLogger("cardflow.server.sso")

router = APIRouter(include_in_schema=False)

# The sign-in's state, kept by the browser that started it (login CSRF: a callback URL from
# someone else's sign-in does not log this browser in).
SSO_COOKIE = "cardflow_sso"


def _failed(reason: str, status_code: int) -> Response:
    # 502/503 (the provider's fault, or busy) are shown as they are; the rest 400 or 403
    return message_page(
        "Single sign-on failed",
        f"Single sign-on failed: {reason}.",
        ok=False,
        status_code=status_code,
        back="/login",
        back_label="Back to log in",
    )


@router.get("/sso/login")
async def sso_login(cf: CardflowDep) -> Response:
    if not cf.sso.enabled:
        return _failed("single sign-on is not set up on this cardflow", 404)
    try:
        url, state = await cf.sso.start()
    except SsoFailed as exc:
        log.warning("single sign-on could not start: %s", exc.reason)
        return _failed(exc.reason, exc.status_code)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        SSO_COOKIE,
        state,
        max_age=int(LOGIN_LIFETIME.total_seconds()),
        path="/sso",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back
        secure=cf.settings.public_url.startswith("https://"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(CALLBACK_PATH)
async def sso_callback(request: Request, cf: CardflowDep) -> Response:
    if not cf.sso.enabled:
        return _failed("single sign-on is not set up on this cardflow", 404)
    try:
        user_id = await cf.sso.finish(request.query_params, request.cookies.get(SSO_COOKIE))
    except SsoFailed as exc:
        log.warning("single sign-on failed: %s", exc.reason)
        await asyncio.to_thread(
            cf.audit.failed, "web.login_failed", f"single sign-on: {exc.reason}"
        )
        failed = _failed(exc.reason, exc.status_code)
        failed.delete_cookie(SSO_COOKIE, path="/sso", httponly=True, samesite="lax")
        return failed
    session_token = await asyncio.to_thread(cf.web_sessions.open_for, user_id)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await asyncio.to_thread(cf.web_sessions.end, previous)
    log.info("single sign-on: user %s logged in", user_id)
    response = RedirectResponse("/flows", status_code=303)
    response.delete_cookie(SSO_COOKIE, path="/sso", httponly=True, samesite="lax")
    response.set_cookie(
        SESSION_COOKIE,
        session_token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",  # as a login link's session: the provider redirects back cross-site
        secure=cf.settings.public_url.startswith("https://"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
