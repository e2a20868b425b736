"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cardflow import __version__
from cardflow.app import Cardflow
from cardflow.audit.actor import Actor, current_actor
from cardflow.flows.scheduler import tick_forever
from cardflow.logs import ACCESS_LOGGER
from cardflow.queue import RunQueue, stop_worker
from cardflow.server import api_docs, errors, sso, web
from cardflow.server.routers import (
    audit,
    cards,
    connections,
    flows,
    invoke,
    oauth_callback,
    operations,
    presets,
    runs,
    users,
)
from cardflow.server.schemas import Health
from cardflow.settings import Settings

access_log = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """One structured log line per request: method, path (never the query), status, time.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task group and memory
    streams per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )


class ActorScope:
    """Each request starts as an anonymous actor at the client's address (what the audit
    log records for a failed login); the caller check then names the token or session.
    Whatever a request sets is undone when it ends, so nothing carries over to code that
    shares the task (an in-process test client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = current_actor.set(Actor("anonymous", address=client[0] if client else None))
        try:
            await self.app(scope, receive, send)
        finally:
            current_actor.reset(token)


async def _prune_runs(cf: Cardflow) -> None:
    """Delete run history and audit log entries past their retention, at start and then
    every hour."""
    while True:
        cutoff = datetime.now(UTC) - timedelta(days=cf.settings.run_retention_days)
        try:
            removed = await asyncio.to_thread(cf.runs.prune, cutoff)
            if removed:
                logging.getLogger("cardflow.runs.service").info("pruned %d old runs", removed)
        except Exception:
            logging.getLogger("cardflow.runs.service").exception("pruning run history failed")
        await _prune_audit(cf)
        await asyncio.sleep(3600)


async def _prune_audit(cf: Cardflow) -> None:
    cutoff = datetime.now(UTC) - timedelta(days=cf.settings.audit_retention_days)
    try:
        removed = await asyncio.to_thread(cf.audit.prune, cutoff)
        if removed:
            logging.getLogger("cardflow.audit").info("pruned %d old audit entries", removed)
    except Exception:
        logging.getLogger("cardflow.audit").exception("pruning the audit log failed")


class _CardflowAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost: FastAPI's request-body limiter answers some 413s itself, in plain text.
        return errors.ShapedTooLarge(super().build_middleware_stack())


def create_app(
    cf: Cardflow | None = None, *, settings: Settings | None = None, worker: bool = True
) -> FastAPI:
    """The app; it opens (and later closes) its own Cardflow unless one is given.

    On PostgreSQL it queues runs (see cardflow.queue) and, with ``worker``, also runs a
    worker for them in this process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = cf is None
        instance: Cardflow = cf if cf is not None else await asyncio.to_thread(Cardflow, settings)
        app.state.cardflow = instance
        # This process beats, and ends the runs of processes that stopped (now, then
        # every few seconds): never those of another server still alive.
        instance.processes.sweeps = True
        instance.processes.queue_resumes_runs = not instance.db.is_sqlite
        await asyncio.to_thread(instance.processes.ensure)
        await asyncio.to_thread(instance.processes.end_orphaned)
        housekeeping = asyncio.create_task(_prune_runs(instance))
        queue = (
            None
            if instance.db.is_sqlite
            else RunQueue(instance.settings, instance.engine, instance.scheduler)
        )
        working: asyncio.Task[None] | None = None
        # Without a queue (SQLite) this process fires scheduled flows itself.
        ticking = asyncio.create_task(tick_forever(instance.scheduler)) if queue is None else None
        if queue is not None:
            await queue.open()
            instance.engine.use_queue(queue)
            if worker:
                working = asyncio.create_task(
                    queue.supervise(concurrency=instance.settings.worker_concurrency),
                    name="cardflow-worker",
                )
        try:
            yield
        finally:
            housekeeping.cancel()
            if ticking is not None:
                ticking.cancel()
            if working is not None:
                await stop_worker(working, instance.settings.shutdown_grace)
            await instance.engine.shutdown(instance.settings.shutdown_grace)
            await asyncio.to_thread(instance.run_writer.flush)
            if queue is not None:
                await queue.close()
            await instance.aclose()
            if owned:
                instance.close()

    configured = cf.settings if cf is not None else settings or Settings()
    app = _CardflowAPI(
        # Counted while the body streams in, before any route (or authentication) runs.
        max_body_size=configured.max_request_bytes,
        title="cardflow",
        version=__version__,
        description="Call third-party HTTP APIs from automated flows with stored, "
        "encrypted credentials. Every /api/v1 route needs `Authorization: Bearer <token>` "
        "(create one with `cardflow token create --name NAME`). The web app at / uses the same "
        "routes with its session cookie and CSRF token. Each route names the least role "
        "(viewer, builder, admin, owner) that may call it as x-min-role; a caller below it "
        "gets 403 forbidden.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served from local assets (api_docs), never a CDN
        redoc_url=None,
    )
    if cf is not None:
        app.state.cardflow = cf
    errors.install(app)
    app.include_router(connections.router)
    app.include_router(connections.auth_types_router)
    app.include_router(presets.router)
    app.include_router(cards.router)
    app.include_router(flows.router)
    app.include_router(runs.router)
    app.include_router(users.router)
    app.include_router(invoke.router)
    app.include_router(oauth_callback.router)
    app.include_router(operations.router)
    app.include_router(audit.router)
    app.include_router(sso.router)
    app.include_router(web.router)
    api_docs.install(app)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Health:
        # async: nothing here blocks, and a thread-pool hop would make it wait for a
        # dozen turns of a busy event loop instead of one
        return Health(status="ok")

    # Ahead of every other route: /invoke is the hot path (see routers/invoke.py).
    app.router.routes.insert(
        0, Route("/invoke/{alias}", invoke.invoke_endpoint, methods=["GET", "POST"])
    )
    app.add_middleware(ActorScope)
    app.add_middleware(AccessLog)
    return app


def from_environment() -> FastAPI:
    """The app of one of several `cardflow serve --processes N` processes: settings from
    the environment, logs as JSON, tuned like a single server."""
    from cardflow.logs import configure_logging
    from cardflow.server.process import tune_for_serving

    settings = Settings()
    configure_logging(settings.log_level)
    tune_for_serving()
    return create_app(settings=settings, worker=settings.embedded_worker)
