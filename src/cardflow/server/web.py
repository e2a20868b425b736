"""The web app's pages: login, logout, and the shell every page's script renders into.

Pages hold no logic of their own: the scripts under ``static/js`` call the same /api/v1
routes as any other client, with the session cookie and the CSRF token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cardflow.access.roles import Caller, Role
from cardflow.access.web_sessions import SESSION_LIFETIME, csrf_matches, csrf_token
from cardflow.app import Cardflow
from cardflow.errors import Unauthorized
from cardflow.server.deps import SESSION_COOKIE, CardflowDep, session_caller

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# No inline script or style anywhere: whatever text a page shows, nothing in it can run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Only the login and logout forms have bodies, and they hold one token each.
FORM_BODY_LIMIT = 64 * 1024
router = APIRouter(include_in_schema=False, max_body_size=FORM_BODY_LIMIT)

# page name -> (title, nav section)
PAGES = {
    "flows": ("Flows", "flows"),
    "builder": ("Flow builder", "flows"),
    "connections": ("Connections", "connections"),
    "runs": ("Run history", "runs"),
    "run": ("Run", "runs"),
    "audit": ("Audit log", "audit"),
    "users": ("Users", "users"),
}
# pages for some roles only: page -> (the least role, what it is for); the API behind each
# has the same rule
PAGE_ROLES = {
    "audit": (Role.admin, "Only an admin or owner may read the audit log"),
    "users": (Role.owner, "Only an owner may manage users"),
}


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def message_page(
    title: str, message: str, *, ok: bool, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return render("message.html", status_code, title=title, message=message, ok=ok, **context)


async def current_session(cf: Cardflow, request: Request) -> tuple[str, Caller] | None:
    """The browser's session token and its user if it is a live session, else None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        caller = await session_caller(cf, token)
    except Unauthorized:
        return None
    return token, caller


async def _form_field(request: Request, name: str) -> str | None:
    """One field of a posted form (urlencoded; the only forms are login and logout)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return next(iter(form.get(name, [])), None)


def _secure(cf: Cardflow) -> bool:
    return cf.settings.public_url.startswith("https://")


async def _page(request: Request, cf: Cardflow, page: str, **ids: str) -> Response:
    current = await current_session(cf, request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    token, caller = current
    title, section = PAGES[page]
    if page in PAGE_ROLES and not caller.may(PAGE_ROLES[page][0]):
        return message_page(
            title,
            f"{PAGE_ROLES[page][1]}; you are a {caller.role}.",
            ok=False,
            status_code=403,
        )
    return render(
        "app.html",
        page=page,
        title=title,
        section=section,
        csrf=csrf_token(token),
        public_url=cf.settings.public_url,
        ids=ids,
        user=caller,
    )


@router.get("/")
async def home(request: Request, cf: CardflowDep) -> Response:
    token = await current_session(cf, request)
    return RedirectResponse("/flows" if token else "/login", status_code=303)


@router.get("/login")
async def login(request: Request, cf: CardflowDep) -> Response:
    """A login link opens here: the page asks to confirm, so a link previewer fetching the
    URL (chat apps do) cannot spend the one-time link."""
    token = request.query_params.get("token")
    if token is None:
        if await current_session(cf, request):
            return RedirectResponse("/flows", status_code=303)
        logged_out = "logged_out" in request.query_params
        return message_page(
            "Logged out" if logged_out else "Log in to cardflow",
            "To log in, open a login link. Run this where cardflow runs, then open the link "
            "it prints (it works once, for 15 minutes):",
            ok=True,
            command="cardflow login-link",
            sso_name=cf.sso.provider_name if cf.sso.enabled else None,
        )
    return render("login.html", title="Log in to cardflow", token=token)


@router.post("/login")
async def login_confirmed(request: Request, cf: CardflowDep) -> Response:
    """Spend the login link and give the browser a session (ending any it had)."""
    token = await _form_field(request, "token")
    try:
        session_token = await asyncio.to_thread(cf.web_sessions.redeem, token)
    except Unauthorized as exc:
        return message_page(
            "This login link does not work",
            exc.message,
            ok=False,
            status_code=400,
            command="cardflow login-link",
        )
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await asyncio.to_thread(cf.web_sessions.end, previous)
    response = RedirectResponse("/flows", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        # Lax, not Strict: the browser comes back from an OAuth provider by a cross-site
        # redirect and must still be logged in; state changes need the CSRF token anyway.
        samesite="lax",
        secure=_secure(cf),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/logout")
async def logout(request: Request, cf: CardflowDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    given = await _form_field(request, "csrf_token")
    if token and not csrf_matches(token, given):
        return message_page(
            "Log out failed",
            "The form had no valid CSRF token; reload the page and try again.",
            ok=False,
            status_code=403,
        )
    await asyncio.to_thread(cf.web_sessions.end, token)
    response = RedirectResponse("/login?logged_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/flows")
async def flows_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "flows")


@router.get("/flows/new")
async def new_flow_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "builder")


@router.get("/flows/{flow_id}")
async def builder_page(flow_id: str, request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "builder", flow=flow_id)


@router.get("/connections")
async def connections_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "connections")


@router.get("/runs")
async def runs_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "runs")


@router.get("/users")
async def users_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "users")


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "run", run=run_id)


@router.get("/audit")
async def audit_page(request: Request, cf: CardflowDep) -> Response:
    return await _page(request, cf, "audit")
