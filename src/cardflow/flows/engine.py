"""The flow engine: runs a flow's cards in order, answers API-endpoint callers, records runs.

Runs are tasks of their own, bounded by a semaphore: a caller that disconnects never
cancels its run. On shutdown, runs get a grace period, then are recorded as failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cardflow.cards.registry import CARDS
from cardflow.cards.runner import failed_result, run_card
from cardflow.errors import CardflowError, InvalidInput
from cardflow.flows.control import NestedCardFailed
from cardflow.flows.expressions import ExpressionError, render
from cardflow.flows.model import CardStep, FlowDocument
from cardflow.flows.redact import Redactor
from cardflow.run_writer import CardRecord, RunRecord, RunWriter
from cardflow.store.models import new_id

if TYPE_CHECKING:
    from cardflow.app import Cardflow

log = logging.getLogger("cardflow.flows")


@dataclass(frozen=True)
class FlowResponse:
    """What an API-endpoint caller gets."""

    status_code: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(
        cls, status_code: int, data: Any, headers: dict[str, str] | None = None
    ) -> FlowResponse:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status_code, merged, json.dumps(data, ensure_ascii=False).encode())


@dataclass(frozen=True)
class FlowSnapshot:
    """The parts of a stored flow a run needs."""

    id: str
    name: str
    document: FlowDocument
    client_token: str | None = None


class _StepFailed(Exception):
    def __init__(self, card_id: str, error: dict[str, Any]) -> None:
        super().__init__(card_id)
        self.card_id = card_id
        self.error = error


@dataclass
class RunHandle:
    run_id: str
    task: asyncio.Task[None]
    response: asyncio.Future[FlowResponse] | None


@dataclass
class _Run:
    engine: FlowEngine
    flow: FlowSnapshot
    record: RunRecord
    trigger: dict[str, Any]
    response: asyncio.Future[FlowResponse] | None
    redactor: Redactor
    steps: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    # -- what control cards see (cardflow.cards.base.FlowControl) -------------------------

    def control(self, scope: dict[str, Any], key: str) -> _StepControl:
        return _StepControl(self, scope, key)

    def respond(self, status_code: int, headers: dict[str, str], body: Any, *, raw: bool) -> bool:
        if self.response is None or self.response.done():
            return False
        if raw or isinstance(body, str):
            merged = {"Content-Type": "text/plain; charset=utf-8", **headers}
            text = body if isinstance(body, str) else ""
            self.response.set_result(FlowResponse(status_code, merged, text.encode()))
        else:
            self.response.set_result(FlowResponse.json(status_code, body, headers))
        return True


@dataclass
class _StepControl:
    run: _Run
    scope: dict[str, Any]
    key: str

    @property
    def answers_caller(self) -> bool:
        return self.run.response is not None

    def respond(self, status_code: int, headers: dict[str, str], body: Any, *, raw: bool) -> bool:
        return self.run.respond(status_code, headers, body, raw=raw)

    def stop(self) -> None:
        self.run.stopped = True

    async def run_nested(
        self, parent: str, steps: list[Any], scope: dict[str, Any]
    ) -> dict[str, Any]:
        parsed = [CardStep.model_validate(step) for step in steps]
        nested_scope = {**self.scope, **scope, "steps": dict(self.scope["steps"])}
        try:
            return await self.run.engine._run_steps(
                self.run, parsed, nested_scope, self.key + parent + "."
            )
        except _StepFailed as failed:
            raise NestedCardFailed(
                f"Nested card {failed.card_id!r} failed: {failed.error.get('message')}",
                status_code=failed.error.get("status_code"),
            ) from None


class FlowEngine:
    def __init__(
        self,
        cf: Cardflow,
        writer: RunWriter,
        *,
        max_concurrent_runs: int,
    ) -> None:
        self._cf = cf
        self._writer = writer
        self._limit = max_concurrent_runs
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        flow: FlowSnapshot,
        trigger: dict[str, Any],
        *,
        trigger_type: str,
        answer_caller: bool,
    ) -> RunHandle:
        """Start a run in the background; the handle's response resolves when the caller
        should be answered (Close, Return, or the end of the run)."""
        loop = asyncio.get_running_loop()
        response: asyncio.Future[FlowResponse] | None = (
            loop.create_future() if answer_caller else None
        )
        record = RunRecord(
            id=new_id("run"),
            flow_id=flow.id,
            trigger=trigger_type,
            status="running",
            started_at=datetime.now(UTC),
        )
        secrets = [flow.client_token] if flow.client_token else []
        redactor = Redactor(secrets)
        if flow.document.save_data:
            redactor = redactor.learn(trigger)
        run = _Run(self, flow, record, trigger, response, redactor)
        if flow.document.save_data:
            record.trigger_data = run.redactor(trigger)
        task = loop.create_task(self._execute(run), name=f"cardflow-run-{record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return RunHandle(record.id, task, response)

    async def run(self, flow: FlowSnapshot, trigger: dict[str, Any], *, trigger_type: str) -> str:
        """Run a flow to its end (manual runs); returns the run id."""
        handle = self.start(flow, trigger, trigger_type=trigger_type, answer_caller=False)
        await asyncio.shield(handle.task)
        return handle.run_id

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores.setdefault(loop, asyncio.Semaphore(self._limit))
        return semaphore

    async def _execute(self, run: _Run) -> None:
        record = run.record
        async with self._semaphore():
            self._writer.submit(record)
            scope = {
                "trigger": run.trigger,
                "steps": run.steps,
                "flow": {"id": run.flow.id, "name": run.flow.name, "run_id": record.id},
            }
            try:
                await self._run_steps(run, run.flow.document.cards, scope, "")
                record.status = "succeeded"
            except _StepFailed as failed:
                record.status = "failed"
                record.error = {"card": failed.card_id, **failed.error}
            except asyncio.CancelledError:
                record.status = "failed"
                record.error = {
                    "type": "interrupted",
                    "message": "cardflow stopped while this run was going.",
                }
                raise
            except Exception:
                log.exception("flow %s run %s failed unexpectedly", run.flow.id, record.id)
                record.status = "failed"
                record.error = {
                    "type": "internal_error",
                    "message": "cardflow hit an unexpected error; the server log has details.",
                }
            finally:
                record.ended_at = datetime.now(UTC)
                self._writer.submit(record)
                if run.response is not None and not run.response.done():
                    if record.status == "succeeded":
                        body: dict[str, Any] = {"run_id": record.id, "status": record.status}
                        run.response.set_result(FlowResponse.json(200, body))
                    else:
                        body = {"run_id": record.id, "error": record.error}
                        run.response.set_result(FlowResponse.json(500, body))

    async def _run_steps(
        self, run: _Run, steps: list[CardStep], scope: dict[str, Any], prefix: str
    ) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for step in steps:
            if run.stopped:
                break
            outputs = await self._run_step(run, step, scope, prefix)
            scope["steps"][step.id] = outputs
            results[step.id] = outputs
        return results

    async def _run_step(self, run: _Run, step: CardStep, scope: dict[str, Any], prefix: str) -> Any:
        spec = CARDS[step.card]
        key = prefix + step.id
        started = time.perf_counter()
        # Appended now so nested cards are recorded after their parent.
        card = CardRecord(card_key=key, card=step.card, status="running")
        run.record.cards.append(card)
        data = {k: v for k, v in step.inputs.items() if k not in spec.nested_inputs}
        rendered: dict[str, Any] | None = None
        connection_id: str | None = None
        try:
            rendered = render(data, scope)
            inputs = dict(rendered)
            inputs.update({k: step.inputs[k] for k in spec.nested_inputs if k in step.inputs})
            prepared = await self._cf.prepare_card(
                spec, step.connection, inputs, step.options(), run.control(scope, key)
            )
            connection_id = prepared.connection_id
            auth = prepared.ctx.auth
            result = await run_card(spec, prepared.inputs, prepared.ctx)
        except (CardflowError, ExpressionError) as exc:
            error = (
                InvalidInput(f"Card {step.id!r}: {exc}", field="inputs")
                if isinstance(exc, ExpressionError)
                else exc
            )
            auth = None
            result = failed_result(error, (time.perf_counter() - started) * 1000, step.on_error)
        card.status = "succeeded" if result.ok else "failed"
        card.duration_ms = result.duration_ms
        card.status_code = result.status_code
        card.connection_id = connection_id
        save_data = run.flow.document.save_data
        if result.error is not None or save_data:  # else nothing to store, nothing to redact
            redactor = run.redactor
            if auth is not None:
                redactor = redactor.with_values(auth.sensitive_values(), auth.added_headers)
            card.error = redactor(result.error) if result.error else None
            if save_data:
                card.inputs = redactor(rendered) if rendered is not None else None
                card.outputs = redactor(result.outputs) if result.outputs is not None else None
        if result.ok or step.on_error == "continue":
            return result.outputs
        raise _StepFailed(step.id, result.error or {})

    async def shutdown(self, grace: float) -> None:
        """Let runs finish for ``grace`` seconds, then cancel them (recorded as failed)."""
        tasks = [t for t in self._tasks if not t.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
