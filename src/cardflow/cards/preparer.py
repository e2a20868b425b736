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
from cardflow.connections.runtime import ConnectionRuntimes
from cardflow.credentials.base import ConnectionAuth
from cardflow.errors import InvalidInput
from cardflow.net.hosts import AllowedHosts
from cardflow.net.transport import HttpTransport
from cardflow.redaction import SecretSet
from cardflow.settings import Settings
from cardflow.validation import validate

_DEFAULT_OPTIONS = CardOptions()


@dataclass
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
        if isinstance(options, CardOptions):
            opts = options
        elif not options:
            opts = _DEFAULT_OPTIONS
        else:
            opts = validate(CardOptions, options, "options")
        auth: ConnectionAuth | None = None
        connection_id: str | None = None
        allowed: AllowedHosts | None = None
        if connection is not None:
            if not spec.uses_connection:
                raise InvalidInput(f"{spec.id} does not use a connection.", field="connection")
            runtime = await self.runtimes.get(connection)
            auth, connection_id, allowed = runtime.auth, runtime.id, runtime.allowed_hosts
            if secrets is not None:
                runtime.add_secrets_to(secrets)
        ctx = CardContext(
            self.transport,
            auth,
            opts,
            opts.timeout or self.default_timeout,
            flow,
            allowed_hosts=allowed,
            secrets=secrets,
            limits=self.limits,
            hop=hop,
        )
        return PreparedCard(spec, parsed, ctx, connection_id)

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
        prepared = await self.prepare(get_card(card_id), connection, inputs, options)
        return await run_card(prepared.spec, prepared.inputs, prepared.ctx)
