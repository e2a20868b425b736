"""Preparing a card to run: its inputs and options checked, its connection's auth found.

The flow engine, Test this card and the library's ``run_card`` all go through
:class:`CardPreparer`; it holds no state of its own beyond the connection runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cardflow.cards.base import CardContext, CardLimits, CardOptions, CardSpec, FlowControl
from cardflow.cards.registry import get_card
from cardflow.cards.runner import CardResult, run_card, validate_inputs
from cardflow.connections.rejections import CallSite
from cardflow.connections.runtime import ConnectionRuntime, ConnectionRuntimes
from cardflow.errors import InvalidInput
from cardflow.net.transport import HttpTransport
from cardflow.net.urls import is_relative_url
from cardflow.redaction import SecretSet
from cardflow.settings import Settings
from cardflow.validation import validate

_DEFAULT_OPTIONS = CardOptions()


@dataclass(slots=True)
class PreparedCard:
    spec: CardSpec
    inputs: Any
    ctx: CardContext
    connection_id: str | None


class CardPreparer:
    """Validates a card's inputs and options and gives it its connection's auth."""

    def __init__(
        self, settings: Settings, runtimes: ConnectionRuntimes, transport: HttpTransport
    ) -> None:
        self.runtimes = runtimes
        self.transport = transport
        self.default_timeout = settings.default_timeout
        self.limits = CardLimits(
            max_nesting_depth=settings.max_nesting_depth,
            max_for_each_items=settings.max_for_each_items,
            max_expression_bytes=settings.max_expression_bytes,
            max_expression_value_bytes=settings.max_expression_value_bytes,
            expression_timeout=settings.expression_timeout,
            max_pages=settings.max_pages,
            max_run_seconds=settings.max_run_seconds,
        )

    async def prepare(
        self,
        spec: CardSpec,
        connection: str | None,
        inputs: dict[str, Any] | None,
        options: dict[str, Any] | CardOptions | None,
        flow: FlowControl | None = None,
        *,
        secrets: SecretSet | None = None,
        hop: int = 0,
    ) -> PreparedCard:
        """Validate a card's inputs and options and find its connection's auth."""
        parsed = validate_inputs(spec, inputs)
        if spec.check is not None:
            spec.check(parsed, self.limits)
        opts = _options(options)
        runtime = None
        if connection is not None:
            runtime = self._cached_runtime(spec, connection) or await self.runtimes.get(connection)
            if secrets is not None:
                runtime.add_secrets_to(secrets)
        _check_relative_url(parsed, runtime)
        ctx = self._context(opts, runtime, flow, secrets, hop)
        return PreparedCard(spec, parsed, ctx, runtime.id if runtime is not None else None)

    async def add_secrets(self, refs: set[str], secrets: SecretSet) -> None:
        """Add the secrets of these connections (those that exist) to ``secrets``."""
        await self.runtimes.add_secrets(refs, secrets)

    async def run(
        self,
        card_id: str,
        connection: str | None,
        inputs: dict[str, Any] | None,
        options: dict[str, Any] | CardOptions | None,
    ) -> CardResult:
        """Run a card once, alone: not recorded, nothing redacted (library use)."""
        spec = get_card(card_id)
        parsed = validate_inputs(spec, inputs)
        if spec.check is not None:
            spec.check(parsed, self.limits)
        opts = _options(options)
        runtime = None
        if connection is not None:
            runtime = self._cached_runtime(spec, connection) or await self.runtimes.get(connection)
        _check_relative_url(parsed, runtime)
        result = await run_card(spec, parsed, self._context(opts, runtime, None, None, 0))
        code = result.status_code
        rejections = self.runtimes.rejections
        if runtime is not None and code is not None and rejections.concerns(runtime.id, code):
            await rejections.observe(runtime.id, code, result.duration_ms, CallSite())
        return result

    def _cached_runtime(self, spec: CardSpec, connection: str) -> ConnectionRuntime | None:
        """The connection's runtime if checked recently (the usual case: no coroutine)."""
        if not spec.uses_connection:
            raise InvalidInput(f"{spec.id} does not use a connection.", field="connection")
        return self.runtimes.fresh(connection)

    def _context(
        self,
        options: CardOptions,
        runtime: ConnectionRuntime | None,
        flow: FlowControl | None,
        secrets: SecretSet | None,
        hop: int,
    ) -> CardContext:
        return CardContext(
            self.transport,
            runtime.auth if runtime is not None else None,
            options,
            options.timeout or self.default_timeout,
            flow,
            runtime.allowed_hosts if runtime is not None else None,
            secrets,
            self.limits,
            hop,
            runtime.base_url if runtime is not None else None,
        )


def _check_relative_url(inputs: Any, runtime: ConnectionRuntime | None) -> None:
    """A card's relative ``url`` needs a connection with a base_url: said before it runs."""
    url = getattr(inputs, "url", None)
    if isinstance(url, str) and is_relative_url(url) and (runtime is None or not runtime.base_url):
        whose = (
            "the card has no connection"
            if runtime is None
            else (f"its connection {runtime.name!r} has no base_url")
        )
        raise InvalidInput(
            f"inputs.url: {url!r} is a relative URL and {whose}: give a whole https:// URL, "
            "or use a connection with a base_url.",
            field="inputs.url",
        )


def _options(options: dict[str, Any] | CardOptions | None) -> CardOptions:
    if isinstance(options, CardOptions):
        return options
    if not options:
        return _DEFAULT_OPTIONS
    return validate(CardOptions, options, "options")
