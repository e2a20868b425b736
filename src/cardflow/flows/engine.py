"""The flow engine: runs a flow's cards in order, answers API-endpoint callers, records runs.

One :class:`StepExecutor` runs cards for every kind of work — a flow's run, a card tested
alone — so Test this card runs exactly what a flow runs; what differs is the
:class:`Execution` it is given (which records, whom it answers).

Runs are tasks of their own: a caller that disconnects never cancels its run. Each run is
admitted first (:class:`Admission`): at most ``max_concurrent_runs`` execute at once and
at most ``max_runs_per_flow`` of one flow, so a flow that floods (or calls itself) cannot
take every slot; runs beyond wait in a bounded queue, recorded as ``queued``, and past
the queue's bounds a caller is told to come back (503 with Retry-After). A run stops
when it goes over its budget of cards executed or wall time. On shutdown, runs get a
grace period, then are recorded as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cardflow.cards.control import NestedCardFailed
from cardflow.cards.preparer import CardPreparer
from cardflow.cards.registry import CARDS
from cardflow.cards.runner import CardResult, failed_result, run_card
from cardflow.connections.rejections import CallSite
from cardflow.errors import (
    INTERRUPTED,
    Busy,
    CardflowError,
    InvalidInput,
    LoopDetected,
    RunAborted,
    internal_error,
)
from cardflow.flows.expressions import ExpressionError, render_async
from cardflow.flows.model import CardStep, FlowDocument, FlowSnapshot
from cardflow.flows.trigger import form_fields
from cardflow.jsondata import LARGE, dumps_async, exceeds
from cardflow.metrics import (
    CARD_CALLS,
    CARD_SECONDS,
    RUN_SECONDS,
    RUNS_FINISHED,
    RUNS_STARTED,
    host_label,
    status_class,
)
from cardflow.redaction import Redactor, SecretSet, sensitive_values
from cardflow.runs.processes import ProcessRegistry
from cardflow.runs.state import (
    RunStates,
    RunStateTooLarge,
    RunTakenOver,
)
from cardflow.runs.writer import CardRecord, RunRecord, RunWriter
from cardflow.settings import Settings
from cardflow.store.models import new_id

log = logging.getLogger("cardflow.flows")

# A run hands the event loop back at least this often, even when its cards never wait.
_YIELD_EVERY = 0.005


# Values kept with save_data are redacted and cut to CARDFLOW_MAX_SAVED_DATA_BYTES; past
# this size that work moves to a worker thread.
_KEEP_INLINE = 32 * 1024


async def kept(redactor: Redactor, value: Any, limit: int) -> Any:
    """``value`` as save_data keeps it: redacted, at most about ``limit`` as JSON."""
    if value is None:
        return None
    if exceeds(value, _KEEP_INLINE):
        return await asyncio.to_thread(redactor.bounded, value, limit)
    return redactor.bounded(value, limit)


async def learn_trigger(secrets: SecretSet, trigger: dict[str, Any]) -> None:
    """Add what the caller sent under secret names (query, headers, JSON or form body) to
    what is kept out of storage; a large trigger is walked off the event loop."""

    def found() -> list[str]:
        return sensitive_values(trigger, secrets.headers) + sensitive_values(
            form_fields(trigger), secrets.headers
        )

    secrets.add_learned(await asyncio.to_thread(found) if exceeds(trigger, LARGE) else found())


@dataclass(frozen=True)
class FlowAnswer:
    """What a Close, Return or Return Raw card answers the caller."""

    status_code: int
    headers: dict[str, str]
    body: Any
    raw: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "headers": self.headers, "body": self.body}


@dataclass(frozen=True)
class RunLimits:
    max_concurrent_runs: int = 64
    max_runs_per_flow: int = 16
    max_queued_runs: int = 1000
    max_queued_runs_per_flow: int = 100
    max_queued_bytes: int = 64 * 1024 * 1024
    max_cards_per_run: int = 50_000
    max_run_seconds: float = 3600.0
    max_recorded_cards: int = 1000
    max_saved_data_bytes: int = 256 * 1024
    max_flow_depth: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> RunLimits:
        return cls(
            max_concurrent_runs=settings.max_concurrent_runs,
            max_runs_per_flow=settings.max_runs_per_flow,
            max_queued_runs=settings.max_queued_runs,
            max_queued_runs_per_flow=settings.max_queued_runs_per_flow,
            max_queued_bytes=settings.max_queued_bytes,
            max_cards_per_run=settings.max_cards_per_run,
            max_run_seconds=settings.max_run_seconds,
            max_recorded_cards=settings.max_recorded_cards,
            max_saved_data_bytes=settings.max_saved_data_bytes,
            max_flow_depth=settings.max_flow_depth,
        )


class _StepFailed(Exception):
    def __init__(self, card_id: str, error: dict[str, Any]) -> None:
        super().__init__(card_id)
        self.card_id = card_id
        self.error = error


@dataclass
class Execution:
    """One piece of work cards run in: a flow's run, or a card test."""

    trigger: dict[str, Any]
    secrets: SecretSet
    # Recorded runs have a record; card tests are recorded by their caller.
    record: RunRecord | None = None
    save_data: bool = False
    # True when someone waits for a Close / Return answer (an API-endpoint caller, or
    # the person testing a card).
    waiting_caller: bool = False
    on_answer: Callable[[FlowAnswer], None] | None = None
    # Connections the work may use: their secrets are redacted from all it keeps.
    connection_refs: frozenset[str] = frozenset()
    hop: int = 0
    # A queued run (PostgreSQL): its progress is kept after each top-level card, so another
    # worker can go on if this one stops.
    durable: bool = False
    # The top-level card going now (where a retry of a failed run starts).
    position: int = 0
    # Loop cards' results so far, by card key, within the top-level card going now.
    loops: dict[str, list[Any]] = field(default_factory=dict)
    # A queued run: keeps its state now (a loop card finished one more item).
    keep_progress: Callable[[], Awaitable[None]] | None = None
    # A queued run: when a worker first took it up (its time limit counts from there).
    began: datetime | None = None
    # A queued run: the process holding it (its record's writes are fenced on it), how many
    # of its record's cards are stored, and whether another process took it over.
    holder: str | None = None
    stored_cards: int = 0
    taken_over: bool = False
    answer: FlowAnswer | None = None
    stopped: bool = False
    cards_run: int = 0
    last_yield: float = field(default_factory=time.perf_counter)
    _secrets_complete: bool = False

    def respond(self, answer: FlowAnswer) -> bool:
        if self.answer is not None:
            return False
        self.answer = answer
        if self.on_answer is not None:
            self.on_answer(answer)
        return True


@dataclass
class _StepControl:
    """What control cards (Close, Return, loops, branches) see of the execution."""

    executor: StepExecutor
    execution: Execution
    scope: dict[str, Any]
    key: str

    @property
    def answers_caller(self) -> bool:
        return self.execution.waiting_caller

    def respond(self, status_code: int, headers: dict[str, str], body: Any, *, raw: bool) -> bool:
        execution = self.execution
        answered = execution.respond(FlowAnswer(status_code, headers, body, raw))
        if answered and execution.waiting_caller and execution.record is not None:
            execution.record.event(
                "answered", f"Card {self.key!r} answered the caller: HTTP {status_code}."
            )
        return answered

    def stop(self) -> None:
        self.execution.stopped = True

    def loop_done_before(self) -> list[Any]:
        return self.execution.loops.get(self.key, [])

    async def loop_progress(self, results: list[Any]) -> None:
        execution = self.execution
        if execution.keep_progress is None:
            return
        execution.loops[self.key] = results
        try:
            await execution.keep_progress()
        except RunTakenOver:
            execution.taken_over = True
            raise RunAborted("internal_error", "Another worker took the run over.") from None
        except RunStateTooLarge as exc:
            raise RunAborted("run_limit", exc.message) from None
        except Exception as exc:
            # a card's on_error: continue must not swallow it: the run stops, its job
            # is tried again from the state kept before
            raise RunAborted(
                "internal_error", f"The run's progress could not be kept ({type(exc).__name__})."
            ) from None

    async def run_nested(
        self, parent: str, steps: list[Any], scope: dict[str, Any]
    ) -> dict[str, Any]:
        """``steps``: cards the control card was given from its :attr:`CardStep.nested`."""
        nested_scope = {**self.scope, **scope, "steps": dict(self.scope["steps"])}
        try:
            return await self.executor.run_steps(
                self.execution, steps, nested_scope, self.key + parent + "."
            )
        except _StepFailed as failed:
            raise NestedCardFailed(
                f"Nested card {failed.card_id!r} failed: {failed.error.get('message')}",
                status_code=failed.error.get("status_code"),
            ) from None


class StepExecutor:
    """Runs cards one after another in an :class:`Execution`."""

    def __init__(self, preparer: CardPreparer, limits: RunLimits) -> None:
        self.preparer = preparer
        self.limits = limits
        self.rejections = preparer.runtimes.rejections

    async def run_steps(
        self, execution: Execution, steps: list[CardStep], scope: dict[str, Any], prefix: str
    ) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for step in steps:
            if execution.stopped:
                break
            outputs = await self.run_step(execution, step, scope, prefix)
            # A new dict, not an update: outputs holding {{ steps }} (the dict itself, as
            # expressions give it) would otherwise make steps contain itself.
            scope["steps"] = {**scope["steps"], step.id: outputs}
            results[step.id] = outputs
        return results

    async def run_step(
        self, execution: Execution, step: CardStep, scope: dict[str, Any], prefix: str
    ) -> Any:
        result, _ = await self.run_card(execution, step, scope, prefix)
        if result.ok or step.on_error == "continue":
            return result.outputs
        raise _StepFailed(step.id, result.error or {})

    async def run_card(
        self,
        execution: Execution,
        step: CardStep,
        scope: dict[str, Any],
        prefix: str,
        *,
        render: bool = True,
        strict: bool = False,
    ) -> tuple[CardResult, str | None]:
        """Run one card (rendering its inputs first, unless ``render`` is off); returns
        its result, redacted for keeping, and its connection's id. ``strict`` raises
        InvalidInput for inputs that do not fit the card instead of failing the card."""
        await self._pace(execution)
        spec = CARDS[step.card]
        started = time.perf_counter()
        card = self._card_record(execution, prefix + step.id, step.card)
        data = step.data_inputs
        rendered: dict[str, Any] | None = None
        connection_id: str | None = None
        try:
            rendered = await render_async(data, scope, self.preparer.limits) if render else data
            inputs = dict(rendered)
            inputs.update(step.nested)  # control cards get their cards parsed
            prepared = await self.preparer.prepare(
                spec,
                step.connection,
                inputs,
                step.options(),
                _StepControl(self, execution, scope, prefix + step.id),
                secrets=execution.secrets,
                hop=execution.hop,
            )
        except (CardflowError, ExpressionError) as exc:
            if strict:  # a card tested alone: the caller's request is wrong
                if isinstance(exc, ExpressionError):
                    raise InvalidInput(str(exc), field=_expression_field(exc, data)) from None
                raise
            error = (
                InvalidInput(f"Card {step.id!r}: {exc}", field=_expression_field(exc, data))
                if isinstance(exc, ExpressionError)
                else exc
            )
            result = failed_result(error, (time.perf_counter() - started) * 1000, step.on_error)
        else:
            connection_id = prepared.connection_id
            result = await run_card(spec, prepared.inputs, prepared.ctx)
            if spec.uses_connection:  # an HTTP call: counted by card, host and status
                # (a paginating card: each page is a call, counted with the last one's status)
                CARD_CALLS.labels(
                    step.card, host_label(inputs.get("url")), status_class(result.status_code)
                ).inc(result.pages or 1)
                CARD_SECONDS.labels(step.card).observe(result.duration_ms / 1000)
                # A 401/403, or the first success after one, is recorded on the connection;
                # any other answer costs a set lookup (connections.rejections).
                code = result.status_code
                if (
                    connection_id is not None
                    and code is not None
                    and self.rejections.concerns(connection_id, code)
                ):
                    record = execution.record
                    site = (
                        CallSite(record.id, record.flow_id, prefix + step.id)
                        if record is not None
                        else CallSite()  # a card tested alone
                    )
                    await self.rejections.observe(connection_id, code, result.duration_ms, site)
        if result.error is not None:
            await self.complete_secrets(execution)
            result.error = execution.secrets.stored()(result.error)
        if card is not None:
            card.status = "succeeded" if result.ok else "failed"
            card.duration_ms = result.duration_ms
            card.status_code = result.status_code
            card.pages = result.pages
            card.connection_id = connection_id
            card.error = result.error
            if execution.save_data:
                await self.complete_secrets(execution)
                redactor = execution.secrets.stored()
                limit = self.limits.max_saved_data_bytes
                card.inputs = await kept(redactor, rendered, limit)
                card.outputs = await kept(redactor, result.outputs, limit)
        return result, connection_id

    async def complete_secrets(self, execution: Execution) -> None:
        """Before anything is kept or answered: the secrets of every connection the work
        may use (not only those used so far) and what the trigger holds under secret
        names."""
        if execution._secrets_complete:
            return
        execution._secrets_complete = True
        trigger = execution.trigger
        await learn_trigger(execution.secrets, trigger)
        if execution.connection_refs:
            await self.preparer.add_secrets(set(execution.connection_refs), execution.secrets)

    async def shown(self, execution: Execution, value: Any) -> Any:
        """``value`` as it may be answered: every secret of the work blanked out."""
        await self.complete_secrets(execution)
        redactor = execution.secrets.shown()
        if not redactor.forms:
            return value
        if exceeds(value, LARGE):
            return await asyncio.to_thread(redactor, value)
        return redactor(value)

    async def _pace(self, execution: Execution) -> None:
        """Count the card against the run's budget, and let other work run now and then."""
        execution.cards_run += 1
        if execution.cards_run > self.limits.max_cards_per_run:
            raise RunAborted(
                "run_limit",
                f"The run executed more than {self.limits.max_cards_per_run:,} cards "
                "(CARDFLOW_MAX_CARDS_PER_RUN) and was stopped.",
            )
        now = time.perf_counter()
        if now - execution.last_yield > _YIELD_EVERY:
            await asyncio.sleep(0)
            execution.last_yield = time.perf_counter()

    def _card_record(self, execution: Execution, key: str, card: str) -> CardRecord | None:
        record = execution.record
        if record is None:
            return None
        if len(record.cards) + record.cards_before >= self.limits.max_recorded_cards:
            record.cards_omitted += 1
            return None
        # Appended now so nested cards are recorded after their parent.
        entry = CardRecord(card_key=key, card=card, status="running")
        record.cards.append(entry)
        return entry


def flow_of_state(state: dict[str, Any]) -> FlowSnapshot:
    """The flow as a queued run (or a failed run's retry point) kept it."""
    stored = state["flow"]
    return FlowSnapshot(
        stored["id"],
        stored["name"],
        FlowDocument.model_validate(stored["document"]),
        stored.get("client_token"),
        stored.get("version"),
    )


def _run_too_long(seconds: float) -> dict[str, Any]:
    return {
        "type": "run_limit",
        "message": f"The run took longer than {seconds:g} s (CARDFLOW_MAX_RUN_SECONDS) and "
        "was stopped.",
    }


def with_default(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    """The headers, with ``name: value`` added unless present in any case."""
    lower = name.lower()
    if any(key.lower() == lower for key in headers):
        return headers
    return {name: value, **headers}


def _expression_field(exc: ExpressionError, data: dict[str, Any]) -> str:
    """The input an expression error comes from (inputs.<name>), as far as it can tell."""
    for name, value in data.items():
        if isinstance(value, str) and exc.expression in value:
            return f"inputs.{name}"
    return "inputs"


@dataclass(frozen=True)
class FlowResponse:
    """What an API-endpoint caller gets, ready to send."""

    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass
class RunHandle:
    run_id: str
    task: asyncio.Task[None]
    # A Close / Return answer, or how the run ended ({"run_id", "status" or "error"}).
    response: asyncio.Future[FlowAnswer | dict[str, Any]] | None
    execution: Execution


@dataclass
class _Ticket:
    flow_id: str
    size: int
    granted: asyncio.Future[None] | None = None


@dataclass
class Hold:
    """A request still reading its body, counted as the run it will ask for."""

    flow_id: str
    size: int
    waits: bool  # counted as a run that waits for a slot (else as one that starts)
    released: bool = False


class Admission:
    """Run slots of one event loop: how many runs execute, overall and per flow, and a
    bounded queue of the runs waiting for one (first come, first served among the flows
    that are under their own limit)."""

    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self.running = 0
        self.running_by_flow: dict[str, int] = {}
        self.waiting: deque[_Ticket] = deque()
        self.waiting_by_flow: dict[str, int] = {}
        self.waiting_bytes = 0
        # Requests still reading their bodies (see hold), by flow.
        self.held_starting: dict[str, int] = {}
        self.held_waiting: dict[str, int] = {}
        self.held_waiting_bytes = 0

    def reserve(self, flow_id: str, size: int, *, nested: bool = False) -> _Ticket:
        """A place for a new run, or Busy when it could not even wait."""
        ticket = _Ticket(flow_id, size)
        # Runs still waiting are each held by a limit (all slots, or their own flow's):
        # one that is under both starts now rather than queue behind other flows' runs.
        if self._can_run(flow_id):
            self._start(ticket)
            return ticket
        self._room(flow_id, size, nested, held=False)
        ticket.granted = asyncio.get_running_loop().create_future()
        self.waiting.append(ticket)
        self.waiting_by_flow[flow_id] = self.waiting_by_flow.get(flow_id, 0) + 1
        self.waiting_bytes += size
        return ticket

    def hold(self, flow_id: str, size: int, *, nested: bool = False) -> Hold:
        """Before a body of ``size`` bytes is read: Busy unless its run could start or wait
        with the requests still reading theirs counted as runs too (a burst of callers is
        refused before its bodies are read, not after), else a hold to release once the
        body is in (:meth:`reserve` then decides for good)."""
        waits = not self._room(flow_id, size, nested, held=True)
        counts = self.held_waiting if waits else self.held_starting
        counts[flow_id] = counts.get(flow_id, 0) + 1
        if waits:
            self.held_waiting_bytes += size
        return Hold(flow_id, size, waits)

    def release_hold(self, hold: Hold) -> None:
        if hold.released:
            return
        hold.released = True
        counts = self.held_waiting if hold.waits else self.held_starting
        left = counts[hold.flow_id] - 1
        if left:
            counts[hold.flow_id] = left
        else:
            del counts[hold.flow_id]
        if hold.waits:
            self.held_waiting_bytes -= hold.size

    def _room(self, flow_id: str, size: int, nested: bool, *, held: bool) -> bool:
        """True: could start now; False: could wait; Busy otherwise. ``held``: with the
        requests still reading their bodies counted.

        A run called from another run (``nested``) never waits: its caller holds a slot
        while it waits for it, so runs waiting on runs could hold every slot (flows calling
        each other in a ring) and starve every other caller. It is refused at once instead,
        and the calling card may retry after Retry-After."""
        if self._can_run(flow_id, held=held):
            return True
        limits = self.limits
        waiting, flow_waiting = len(self.waiting), self.waiting_by_flow.get(flow_id, 0)
        waiting_bytes = self.waiting_bytes
        if held:
            waiting += sum(self.held_waiting.values())
            flow_waiting += self.held_waiting.get(flow_id, 0)
            waiting_bytes += self.held_waiting_bytes
        if nested:
            raise Busy(
                "Every run slot this flow may use is taken (CARDFLOW_MAX_CONCURRENT_RUNS, "
                "CARDFLOW_MAX_RUNS_PER_FLOW), and a flow called by another flow does not "
                "wait for one; try again shortly.",
                retry_after=1,
            )
        if waiting >= limits.max_queued_runs:
            raise Busy(
                f"{waiting:,} runs are already waiting for a slot "
                "(CARDFLOW_MAX_QUEUED_RUNS); try again shortly.",
                retry_after=5,
            )
        if flow_waiting >= limits.max_queued_runs_per_flow:
            raise Busy(
                f"This flow already has {limits.max_queued_runs_per_flow:,} runs waiting for "
                "a slot (CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW); try again shortly.",
                retry_after=5,
            )
        if waiting and waiting_bytes + size > limits.max_queued_bytes:
            raise Busy(
                "The runs waiting for a slot already hold "
                f"{waiting_bytes:,} bytes of request bodies (CARDFLOW_MAX_QUEUED_BYTES); "
                "try again shortly.",
                retry_after=5,
            )
        return False

    async def wait(self, ticket: _Ticket) -> None:
        if ticket.granted is None:
            return
        try:
            await ticket.granted
        except asyncio.CancelledError:
            if ticket.granted.done() and not ticket.granted.cancelled():
                self.release(ticket)  # granted just as it was cancelled: hand it on
            else:
                self._unqueue(ticket)
            raise

    def withdraw(self, ticket: _Ticket) -> None:
        """Give back a ticket whose run will never start (its caller went away)."""
        if ticket.granted is None or (ticket.granted.done() and not ticket.granted.cancelled()):
            self.release(ticket)
        else:
            ticket.granted.cancel()
            self._unqueue(ticket)

    def release(self, ticket: _Ticket) -> None:
        self.running -= 1
        left = self.running_by_flow[ticket.flow_id] - 1
        if left:
            self.running_by_flow[ticket.flow_id] = left
        else:
            del self.running_by_flow[ticket.flow_id]
        self._wake()

    def _can_run(self, flow_id: str, *, held: bool = False) -> bool:
        running, flow_running = self.running, self.running_by_flow.get(flow_id, 0)
        if held:
            running += sum(self.held_starting.values())
            flow_running += self.held_starting.get(flow_id, 0)
        return (
            running < self.limits.max_concurrent_runs
            and flow_running < self.limits.max_runs_per_flow
        )

    def _start(self, ticket: _Ticket) -> None:
        self.running += 1
        self.running_by_flow[ticket.flow_id] = self.running_by_flow.get(ticket.flow_id, 0) + 1

    def _unqueue(self, ticket: _Ticket) -> None:
        try:
            self.waiting.remove(ticket)
        except ValueError:
            return
        self._forget_waiting(ticket)

    def _forget_waiting(self, ticket: _Ticket) -> None:
        left = self.waiting_by_flow[ticket.flow_id] - 1
        if left:
            self.waiting_by_flow[ticket.flow_id] = left
        else:
            del self.waiting_by_flow[ticket.flow_id]
        self.waiting_bytes -= ticket.size

    def _wake(self) -> None:
        if self.running >= self.limits.max_concurrent_runs:
            return
        for ticket in list(self.waiting):
            if self.running >= self.limits.max_concurrent_runs:
                return
            if not self._can_run(ticket.flow_id):
                continue
            self.waiting.remove(ticket)
            self._forget_waiting(ticket)
            assert ticket.granted is not None
            if ticket.granted.done():  # its waiter was cancelled
                continue
            self._start(ticket)
            ticket.granted.set_result(None)


class RunQueue(Protocol):
    """Where queued runs go (cardflow.queue: procrastinate on PostgreSQL)."""

    async def check_room(self, flow_id: str) -> None:
        """Busy when the queue holds as many waiting runs as it may (overall, per flow)."""

    async def enqueue(self, run_id: str, flow_id: str) -> None:
        """Have a worker execute the run (its state is stored already)."""


# Stands for the answer a Close gave before a run was handed to the queue: the caller has
# had it, and the worker going on must not answer again.
_ANSWERED_BEFORE = FlowAnswer(0, {}, None)
_STATE_VERSION = 1


class FlowEngine:
    def __init__(
        self,
        executor: StepExecutor,
        writer: RunWriter,
        limits: RunLimits,
        states: RunStates | None = None,
        processes: ProcessRegistry | None = None,
    ) -> None:
        self.executor = executor
        self._writer = writer
        self.limits = limits
        self._states = states
        self._processes = processes
        self._admissions: dict[asyncio.AbstractEventLoop, Admission] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Set when runs can be queued (PostgreSQL): respond-async, manual and scheduled
        # runs, retries and the rest of a flow after its Close card go through it.
        self.queue: RunQueue | None = None

    def _registered(self) -> str | None:
        """This process's id once registered (no I/O); None: ask :meth:`_process_id`."""
        registry = self._processes
        if registry is not None and registry.id is not None and registry.owns_pid():
            return registry.id
        return None

    async def _process_id(self) -> str | None:
        """This process, registered (and beating) before its first run is recorded."""
        registry = self._processes
        if registry is None:
            return None
        return self._registered() or await asyncio.to_thread(registry.ensure)

    def _stalled_after(self) -> float:
        """Seconds of silence after which a process is taken for dead."""
        return self._processes.stalled_after if self._processes is not None else 20.0

    def use_queue(self, queue: RunQueue) -> None:
        if self._states is None:
            raise RuntimeError("queued runs need a RunStates store")
        self.queue = queue

    def admission(self) -> Admission:
        loop = asyncio.get_running_loop()
        admission = self._admissions.get(loop)
        if admission is None:
            admission = self._admissions.setdefault(loop, Admission(self.limits))
        return admission

    async def start(
        self,
        flow: FlowSnapshot,
        trigger: dict[str, Any],
        *,
        trigger_type: str,
        answer_caller: bool,
        hop: int = 0,
        size: int = 0,
    ) -> RunHandle:
        """Admit a run and start it in the background (LoopDetected, or Busy when it
        cannot even wait its turn). The handle's response resolves when the caller should
        be answered: with a Close / Return answer, else with the run's end."""
        if hop > self.limits.max_flow_depth:
            raise LoopDetected(
                f"Flows calling cardflow's own URLs are nested {hop} deep, more than "
                f"{self.limits.max_flow_depth} (CARDFLOW_MAX_FLOW_DEPTH): a flow is probably "
                "calling itself."
            )
        ticket = self.admission().reserve(flow.id, size, nested=hop > 0)
        loop = asyncio.get_running_loop()
        response: asyncio.Future[FlowAnswer | dict[str, Any]] | None = (
            loop.create_future() if answer_caller else None
        )
        process_id = self._registered()
        if process_id is None:
            try:
                process_id = await self._process_id()
            except BaseException:
                self.admission().withdraw(ticket)
                raise
        record = RunRecord(
            id=new_id("run"),
            flow_id=flow.id,
            trigger=trigger_type,
            status="queued" if ticket.granted is not None else "running",
            started_at=datetime.now(UTC),
            process_id=process_id,
            flow_version=flow.version,
        )
        RUNS_STARTED.labels(flow.id, trigger_type).inc()
        secrets = SecretSet([flow.client_token] if flow.client_token else [])

        def answered(answer: FlowAnswer) -> None:
            if response is not None and not response.done():
                response.set_result(answer)

        execution = Execution(
            trigger=trigger,
            secrets=secrets,
            record=record,
            save_data=flow.document.save_data,
            waiting_caller=answer_caller,
            on_answer=answered,
            connection_refs=flow.connections,
            hop=hop,
        )
        if flow.document.save_data:
            try:
                await learn_trigger(secrets, trigger)
            except BaseException:
                self.admission().withdraw(ticket)
                raise
            record.trigger_data = await kept(
                secrets.stored(), trigger, self.limits.max_saved_data_bytes
            )
        self._writer.submit(record)
        task = loop.create_task(
            self._execute(flow, execution, ticket, response), name=f"cardflow-run-{record.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return RunHandle(record.id, task, response, execution)

    async def run(
        self, flow: FlowSnapshot, trigger: dict[str, Any], *, trigger_type: str, hop: int = 0
    ) -> str:
        """Run a flow to its end (manual runs); returns the run id."""
        handle = await self.start(
            flow, trigger, trigger_type=trigger_type, answer_caller=False, hop=hop
        )
        await asyncio.shield(handle.task)
        return handle.run_id

    async def enqueue(
        self,
        flow: FlowSnapshot,
        trigger: dict[str, Any],
        *,
        trigger_type: str,
        waiting_caller: bool,
        hop: int = 0,
        retry_of: str | None = None,
        steps: dict[str, Any] | None = None,
        start: int = 0,
        answered: bool = False,
        run_id: str | None = None,
    ) -> str:
        """Record a run as queued and hand it to the queue (no run slot of this process is
        taken); returns its id. ``steps``/``start``: a retry going on from a failed card
        with the earlier cards' outputs. Without a queue (SQLite) the run waits for a run
        slot of this process, from its kept state all the same."""
        if hop > self.limits.max_flow_depth:
            raise LoopDetected(
                f"Flows calling cardflow's own URLs are nested {hop} deep, more than "
                f"{self.limits.max_flow_depth} (CARDFLOW_MAX_FLOW_DEPTH): a flow is probably "
                "calling itself."
            )
        ticket = None
        if self.queue is not None:
            await self.queue.check_room(flow.id)
        else:
            ticket = self.admission().reserve(flow.id, 0, nested=hop > 0)
        record = RunRecord(
            id=run_id or new_id("run"),
            flow_id=flow.id,
            trigger=trigger_type,
            status="queued",
            started_at=datetime.now(UTC),
            retry_of=retry_of,
            flow_version=flow.version,
        )
        if ticket is not None:  # run by this process: its own, from the start
            try:
                record.process_id = await self._process_id()
            except BaseException:
                self.admission().withdraw(ticket)
                raise
        RUNS_STARTED.labels(flow.id, trigger_type).inc()
        execution = Execution(
            trigger=trigger,
            secrets=SecretSet([flow.client_token] if flow.client_token else []),
            record=record,
            waiting_caller=waiting_caller,
            hop=hop,
        )
        if answered:
            execution.answer = _ANSWERED_BEFORE
        if flow.document.save_data:
            await learn_trigger(execution.secrets, trigger)
            record.trigger_data = await kept(
                execution.secrets.stored(), trigger, self.limits.max_saved_data_bytes
            )
        if retry_of is not None:
            record.event(
                "retry", f"Retries run {retry_of} from card {flow.document.cards[start].id!r}."
            )
        assert self._states is not None
        state = self._state(flow, execution, {"steps": steps or {}}, start)
        try:
            await asyncio.to_thread(self._states.create, record, state, start)
        except BaseException:
            if ticket is not None:
                self.admission().withdraw(ticket)
            raise
        if ticket is not None:  # no queue: this process runs it when a slot is free
            task = asyncio.get_running_loop().create_task(
                self._resume_here(record.id, ticket), name=f"cardflow-run-{record.id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return record.id
        assert self.queue is not None
        try:
            await self.queue.enqueue(record.id, flow.id)
        except BaseException:
            await asyncio.to_thread(self._discard_queued, record)
            raise
        return record.id

    async def _resume_here(self, run_id: str, ticket: _Ticket) -> None:
        admission = self.admission()
        try:
            await admission.wait(ticket)
        except asyncio.CancelledError:
            return
        try:
            await self.resume(run_id, worker="this process")
        finally:
            admission.release(ticket)

    def _discard_queued(self, record: RunRecord) -> None:
        assert self._states is not None
        record.status, record.ended_at = "failed", datetime.now(UTC)
        record.error = {"type": "queue_error", "message": "The run could not be queued."}
        self._states.checkpoint(record, holder=record.process_id, written=0, drop_state=True)

    async def resume(self, run_id: str, *, worker: str) -> None:
        """Execute a queued run (on a worker) from where its state says, to its end. A run
        that has ended already (a job run twice) is left alone; one another live process
        holds raises RunHeldElsewhere (its job is tried again later)."""
        assert self._states is not None
        holder = await self._process_id()
        claimed = await asyncio.to_thread(
            self._states.claim, run_id, holder, stalled_after=self._stalled_after()
        )
        if claimed is None:
            return
        record, state = claimed.record, claimed.state
        try:
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"state version {state.get('version')!r}")
            flow = flow_of_state(state)
            flow.document.cards[int(state["next"])]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            # Not something a retry mends: the run ends, saying so.
            log.error("run %s: its kept state cannot be used (%s)", run_id, exc)
            record.status, record.ended_at = "failed", datetime.now(UTC)
            record.error = {
                "type": "internal_error",
                "message": "This run's kept progress could not be read by this cardflow "
                "version, so it cannot go on; retry or run the flow again.",
            }
            await asyncio.to_thread(
                self._states.checkpoint, record, holder=holder, written=0, drop_state=True
            )
            return
        execution = Execution(
            trigger=state["trigger"],
            secrets=SecretSet([flow.client_token] if flow.client_token else []),
            record=record,
            save_data=flow.document.save_data,
            waiting_caller=bool(state.get("waiting_caller")),
            connection_refs=flow.connections,
            hop=int(state.get("hop", 0)),
            durable=True,
            holder=holder,
        )
        if state.get("answered"):
            execution.answer = _ANSWERED_BEFORE
        execution.loops = dict(state.get("loops") or {})
        following = int(state["next"])
        scope = {
            "trigger": execution.trigger,
            "steps": state.get("steps") or {},
            "flow": {"id": flow.id, "name": flow.name, "run_id": record.id},
        }
        if claimed.taken_over:
            record.event(
                "resumed",
                f"Resumed by {worker} from card {flow.document.cards[following].id!r}: the "
                "process running it stopped.",
            )
            # on the run page now, not only at the next card
            with contextlib.suppress(RunTakenOver):
                await self._store(execution)

        async def keep_progress() -> None:
            await self._keep_state(flow, execution, scope, execution.position)

        execution.keep_progress = keep_progress
        # The run's time limit counts from when a worker first took it up, not from when
        # it was queued (a backlog must not use it up).
        execution.began = datetime.fromisoformat(state["began"]) if state.get("began") else None
        if execution.began is None:
            execution.began = datetime.now(UTC)
        elapsed = (datetime.now(UTC) - execution.began).total_seconds()
        status, error = "succeeded", None
        try:
            async with asyncio.timeout(max(self.limits.max_run_seconds - elapsed, 0.001)):
                await self._run_cards(flow, execution, scope, following)
        except RunTakenOver:
            execution.taken_over = True
        except _StepFailed as failed:
            status, error = "failed", {"card": failed.card_id, **failed.error}
        except RunAborted as aborted:
            status, error = "failed", aborted.error
        except RunStateTooLarge as exc:
            status, error = "failed", exc.to_dict()
        except TimeoutError:
            status, error = "failed", _run_too_long(self.limits.max_run_seconds)
        except asyncio.CancelledError:
            # The worker is stopping: the run stays queued with its state, for the next.
            record.status = "queued"
            record.process_id = None
            record.event("handed_back", f"{worker} stopped; the run goes back to the queue.")
            # on record before the next worker takes it (procrastinate retries at once)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store(execution))
            raise
        except Exception:
            incident = secrets.token_hex(4)
            log.exception(
                "flow %s run %s failed unexpectedly (incident %s)", flow.id, record.id, incident
            )
            status, error = "failed", internal_error(incident)
        if execution.taken_over:
            log.warning("run %s was taken over by another worker; %s lets it go", run_id, worker)
            return
        self._finish(record, execution, None, status, error, write=False)
        retry_point = None
        if status == "failed":  # nobody waits for a retry
            execution.answer = execution.answer or _ANSWERED_BEFORE
            retry_point = self._state(flow, execution, scope, execution.position)
        try:
            await self._store(execution, retry_point, execution.position)
        except RunStateTooLarge:
            log.info("run %s is too large to keep for a retry", record.id)
            await self._store(execution)
        except RunTakenOver:
            log.warning("run %s was taken over by another worker as it ended", run_id)

    async def abandon(self, run_id: str, flow_id: str | None) -> None:
        """End as failed a queued run whose job gave up (every attempt failed outside its
        cards: the database was away, a worker kept dying on it); a retry goes on from
        its last completed card."""
        assert self._states is not None
        error = {
            "type": "internal_error",
            "message": "Workers could not execute this run (every attempt failed before its "
            "cards could); retry it once the cause (see the workers' logs) is fixed.",
        }
        if await asyncio.to_thread(self._states.abandon, run_id, error):
            RUNS_FINISHED.labels(flow_id or "none", "failed").inc()

    async def _store(
        self, execution: Execution, state: dict[str, Any] | None = None, following: int = 0
    ) -> None:
        """A queued run's record as it is now, with ``state`` kept (or, once the run has
        ended without one, its state removed), in one transaction fenced on the holder."""
        assert self._states is not None and execution.record is not None
        record = execution.record.snapshot()
        execution.stored_cards = await asyncio.to_thread(
            self._states.checkpoint,
            record,
            holder=execution.holder,
            written=execution.stored_cards,
            state=state,
            next_card=following,
            drop_state=state is None and record.status not in ("queued", "running"),
        )
        if record.process_id != execution.holder:  # handed back: the fence moves with it
            execution.holder = record.process_id

    async def _keep_retry_point(
        self, flow: FlowSnapshot, execution: Execution, scope: dict[str, Any]
    ) -> None:
        """A failed run keeps what a retry from its failed card needs (encrypted, removed
        with the run's history); best effort: the run's record says it failed either way."""
        if self._states is None or execution.record is None:
            return
        execution.answer = execution.answer or _ANSWERED_BEFORE  # nobody waits for a retry
        try:
            await self._keep_state(flow, execution, scope, execution.position, record=False)
        except RunStateTooLarge:
            log.info("run %s is too large to keep for a retry", execution.record.id)
        except Exception:
            log.exception("the retry point of run %s could not be kept", execution.record.id)

    async def _execute(
        self,
        flow: FlowSnapshot,
        execution: Execution,
        ticket: _Ticket,
        response: asyncio.Future[FlowAnswer | dict[str, Any]] | None,
    ) -> None:
        record = execution.record
        assert record is not None
        admission = self.admission()
        try:
            await admission.wait(ticket)
        except asyncio.CancelledError:
            self._finish(record, execution, response, "failed", INTERRUPTED)
            raise
        try:
            if record.status == "queued":
                record.status = "running"
                self._writer.submit(record)
            scope = {
                "trigger": execution.trigger,
                "steps": {},
                "flow": {"id": flow.id, "name": flow.name, "run_id": record.id},
            }
            status, error = "succeeded", None
            try:
                async with asyncio.timeout(self.limits.max_run_seconds):
                    if await self._run_cards(flow, execution, scope, 0):
                        status = "handed_off"
            except _StepFailed as failed:
                status, error = "failed", {"card": failed.card_id, **failed.error}
            except RunAborted as aborted:
                status, error = "failed", aborted.error
            except TimeoutError:
                status, error = "failed", _run_too_long(self.limits.max_run_seconds)
            except asyncio.CancelledError:
                status, error = "failed", INTERRUPTED
                raise
            except Exception:
                incident = secrets.token_hex(4)
                log.exception(
                    "flow %s run %s failed unexpectedly (incident %s)", flow.id, record.id, incident
                )
                status, error = "failed", internal_error(incident)
            finally:
                if status != "handed_off":
                    self._finish(record, execution, response, status, error)
            if status == "failed":
                await self._keep_retry_point(flow, execution, scope)
        finally:
            admission.release(ticket)

    async def _run_cards(
        self, flow: FlowSnapshot, execution: Execution, scope: dict[str, Any], start: int
    ) -> bool:
        """Run the flow's top-level cards from ``start``. A queued run keeps its progress
        after each; a run whose caller has been answered (Close) hands the rest of the flow
        to the queue when there is one — True then, and this task is done with it."""
        cards = flow.document.cards
        for index in range(start, len(cards)):
            if execution.stopped:
                break
            execution.position = index
            step = cards[index]
            outputs = await self.executor.run_step(execution, step, scope, "")
            scope["steps"] = {**scope["steps"], step.id: outputs}
            execution.loops.clear()  # the card's loops are done
            following = index + 1
            if following == len(cards) or execution.stopped:
                break
            if execution.durable:
                await self._keep_state(flow, execution, scope, following)
            elif (
                execution.answer is not None
                and self.queue is not None
                and await self._hand_off(flow, execution, scope, following)
            ):
                return True
        return False

    def _state(
        self, flow: FlowSnapshot, execution: Execution, scope: dict[str, Any], following: int
    ) -> dict[str, Any]:
        record = execution.record
        assert record is not None
        return {
            "version": _STATE_VERSION,
            "flow": {
                "id": flow.id,
                "name": flow.name,
                "document": flow.document.model_dump(mode="json"),
                "client_token": flow.client_token,
                "version": flow.version,
            },
            "trigger": execution.trigger,
            "waiting_caller": execution.waiting_caller,
            "answered": execution.answer is not None,
            "hop": execution.hop,
            "steps": scope["steps"],
            "next": following,
            "loops": execution.loops,
            "began": execution.began.isoformat() if execution.began else None,
        }

    async def _keep_state(
        self,
        flow: FlowSnapshot,
        execution: Execution,
        scope: dict[str, Any],
        following: int,
        *,
        record: bool = True,
    ) -> None:
        assert self._states is not None and execution.record is not None
        state = self._state(flow, execution, scope, following)
        if execution.durable and record:
            # The cards done so far go on record with the state that says they are done: a
            # worker going on from this state adds its cards after them.
            await self._store(execution, state, following)
        else:
            await asyncio.to_thread(self._states.save, execution.record.id, state, following)

    async def _hand_off(
        self, flow: FlowSnapshot, execution: Execution, scope: dict[str, Any], following: int
    ) -> bool:
        """The caller has its answer: the rest of the flow goes to the queue, so this
        process's run slot is free at once. False (go on here) if the queue cannot take it."""
        assert self.queue is not None and execution.record is not None
        record = execution.record
        try:
            await self.queue.check_room(flow.id)
            await self._keep_state(flow, execution, scope, following)
        except (Busy, RunStateTooLarge):
            return False  # it goes on here, as it would without a queue
        except Exception:
            log.exception("run %s could not be queued; it goes on in this process", record.id)
            return False
        record.status = "queued"
        record.event(
            "queued",
            f"The caller has its answer: the rest of the flow (from card "
            f"{flow.document.cards[following].id!r}) runs on a worker.",
        )
        try:
            self._writer.submit(record)
            await self._writer.flush_async()  # on record before a worker takes it up
            await self.queue.enqueue(record.id, flow.id)
        except Exception:
            log.exception("run %s could not be queued; it goes on in this process", record.id)
            record.status = "running"
            record.events.pop()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._states.delete, record.id)  # type: ignore[union-attr]
            return False
        self._writer.forget(record.id)
        return True

    def _finish(
        self,
        record: RunRecord,
        execution: Execution,
        response: asyncio.Future[FlowAnswer | dict[str, Any]] | None,
        status: str,
        error: dict[str, Any] | None,
        *,
        write: bool = True,
    ) -> None:
        record.status = status
        record.error = error
        record.ended_at = datetime.now(UTC)
        flow_label = record.flow_id or "none"
        RUNS_FINISHED.labels(flow_label, status).inc()
        RUN_SECONDS.labels(flow_label).observe(
            (record.ended_at - record.started_at).total_seconds()
        )
        for card in record.cards:
            # stopped inside it (a run limit, shutdown): the writer keeps back every card
            # after one still running, so it would lose all the run did
            if card.status == "running":
                card.status = "failed"
                card.error = error
        if response is not None and not response.done():
            if status == "succeeded":
                response.set_result({"run_id": record.id, "status": status})
                told = "HTTP 200 with the run's id and status (no Close or Return answered)"
            else:
                response.set_result({"run_id": record.id, "error": error})
                told = "HTTP 500 with the run's id and error"
            record.event("answered", f"The caller got {told}.")
        if write:
            self._writer.submit(record)

    async def response_for(
        self, handle: RunHandle, value: FlowAnswer | dict[str, Any]
    ) -> FlowResponse:
        """The HTTP answer for what a run gave its caller, with every secret of the run
        blanked out (a flow may echo what an upstream echoed of its credentials)."""
        json_type = {"Content-Type": "application/json"}
        if isinstance(value, dict):  # the run ended without a Close or Return
            status = 200 if "status" in value else 500
            return FlowResponse(status, json_type, (await dumps_async(value)).encode())
        shown = await self.executor.shown(
            handle.execution, {"headers": value.headers, "body": value.body}
        )
        headers: dict[str, str] = shown["headers"]
        body = shown["body"]
        if value.raw or isinstance(body, str):
            text = body if isinstance(body, str) else ""
            headers = with_default(headers, "Content-Type", "text/plain; charset=utf-8")
            return FlowResponse(value.status_code, headers, text.encode("utf-8", "replace"))
        headers = with_default(headers, "Content-Type", "application/json")
        return FlowResponse(value.status_code, headers, (await dumps_async(body)).encode())

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
