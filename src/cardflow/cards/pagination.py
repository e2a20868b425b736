"""Pagination for the Get, Post and Raw Request cards: one card, many pages.

A card given a ``pagination`` input sends its request, reads the answer, and keeps asking
for the next page — by a URL the answer gives (``next_url``), its ``Link: rel="next"``
header (``link_header``), a page number or offset it counts (``increment``), or a cursor
the answer gives (``cursor``) — until there is no next page, ``stop_when`` says so, or a
bound is reached. Every page is sent exactly as the first is (:func:`cardflow.net.client.
send`: the connection's auth, its ``allowed_hosts``, the outbound network policy, the
card's retry policy and timeout), so a next URL on another host is refused as a first URL
there would be.

Expressions (``items``, ``stop_when``, ``next``, ``cursor``) are JMESPath written without
``{{ }}`` (like object.get's ``path``), evaluated on each page's ``{status_code, headers,
body}``; a ``{{ }}`` in them is the flow's, filled in once before the card runs.

Bounds: ``max_pages`` (at most ``CARDFLOW_MAX_PAGES``), ``max_items``, the response byte
cap (``CARDFLOW_MAX_RESPONSE_BYTES``) over all pages together, and the run's wall time
(``CARDFLOW_MAX_RUN_SECONDS``: in a flow the run's own limit; a card tested or run alone
starts no page past it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from multidict import CIMultiDict
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails
from yarl import URL

from cardflow.cards.base import CardContext, CardLimits, CardOutcome, as_text
from cardflow.errors import (
    CardFailed,
    InvalidInput,
    InvalidResponse,
    ResponseTooLarge,
    UpstreamTimeout,
)
from cardflow.jsondata import json_size
from cardflow.net import client
from cardflow.net.transport import InboundResponse, OutboundRequest, safe_url
from cardflow.net.urls import parse_http_url
from cardflow.search import OverBudget, jmespath_reason, search_async

FIELD = "inputs.pagination"
DEFAULT_MAX_PAGES = 100
MODES = ("next_url", "link_header", "increment", "cursor")
_MODES = "the modes are next_url, link_header, increment and cursor"


@lru_cache(maxsize=256)
def _compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def _compiles(value: str | None) -> str | None:
    if value is not None:
        try:
            _compiled(value)
        except JMESPathError as exc:
            raise ValueError(f"not a valid JMESPath expression: {jmespath_reason(exc)}") from None
    return value


_EXPRESSION = (
    "JMESPath over this page's {status_code, headers, body}, written without {{ }} "
    "(like object.get's path)"
)


class _Pagination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: str | None = Field(
        default=None,
        min_length=1,
        description=f"{_EXPRESSION}, e.g. body.data: the page's items, added to the items "
        "output (a list is added item by item, null adds nothing); all pages' items together "
        "at most CARDFLOW_MAX_EXPRESSION_VALUE_BYTES as JSON.",
    )
    stop_when: str | None = Field(
        default=None,
        min_length=1,
        description=f"{_EXPRESSION}, e.g. body.has_more == `false`: when true (JMESPath truth), "
        "no page is asked for after this one.",
    )
    max_pages: int = Field(
        default=DEFAULT_MAX_PAGES,
        ge=1,
        description="Most pages fetched (at most CARDFLOW_MAX_PAGES); the card then stops "
        "with stopped_by max_pages.",
    )
    max_items: int | None = Field(
        default=None,
        ge=1,
        description="Most items kept; the card stops with stopped_by max_items once it has "
        "them (needs items).",
    )

    _check_items = field_validator("items", "stop_when")(lambda cls, v: _compiles(v))

    @model_validator(mode="after")
    def _max_items_needs_items(self) -> _Pagination:
        if self.max_items is not None and self.items is None:
            raise ValueError("max_items counts what items gives: set items too")
        return self


class NextUrlPagination(_Pagination):
    """The next page's URL is in the answer (``body.next``, ``body.links.next``)."""

    mode: Literal["next_url"] = Field(
        description="The next page's URL is read from each answer (next)."
    )
    next: str = Field(
        min_length=1,
        description=f"{_EXPRESSION}, giving the next page's URL (relative URLs are resolved "
        "against this page's); null or empty: this is the last page.",
    )

    _check_next = field_validator("next")(lambda cls, v: _compiles(v))


class LinkHeaderPagination(_Pagination):
    """The next page's URL is the answer's ``Link: <…>; rel="next"`` (RFC 8288)."""

    mode: Literal["link_header"] = Field(
        description="The next page's URL is the answer's Link header rel=\"next\" target."
    )


class IncrementPagination(_Pagination):
    """A page number or an offset the card counts, sent as a query parameter or body field."""

    mode: Literal["increment"] = Field(
        description="A page number or an offset the card counts (parameter)."
    )
    parameter: str = Field(min_length=1, description="Name of the page or offset parameter.")
    send_in: Literal["query", "body"] = Field(
        default="query", description="Where it is sent: query, or the JSON body (Post)."
    )
    counter: Literal["page", "offset"] = Field(
        default="page",
        description="page: +step each page (from 1); offset: + the number of items the page "
        "gave (from 0), or +step when step is set.",
    )
    start: int | None = Field(
        default=None, description="The first page's value; default 1 (page) or 0 (offset)."
    )
    step: int | None = Field(
        default=None, ge=1, description="Added after each page; default 1 (page)."
    )

    @model_validator(mode="after")
    def _stops(self) -> IncrementPagination:
        if self.items is None and self.stop_when is None:
            raise ValueError(
                "increment needs items (an empty page ends it) or stop_when, or it would "
                "only stop at max_pages"
            )
        if self.counter == "offset" and self.step is None and self.items is None:
            raise ValueError("an offset steps by the items each page gives: set items or step")
        return self


class CursorPagination(_Pagination):
    """A cursor from the answer, sent back as a query parameter or body field."""

    mode: Literal["cursor"] = Field(
        description="A cursor read from each answer (cursor), sent back as parameter."
    )
    cursor: str = Field(
        min_length=1,
        description=f"{_EXPRESSION}, giving the next page's cursor (e.g. "
        "body.meta.next_cursor); null or empty: this is the last page.",
    )
    parameter: str = Field(min_length=1, description="Name of the cursor parameter.")
    send_in: Literal["query", "body"] = Field(
        default="query", description="Where it is sent: query, or the JSON body (Post)."
    )

    _check_cursor = field_validator("cursor")(lambda cls, v: _compiles(v))


Pagination = Annotated[
    NextUrlPagination | LinkHeaderPagination | IncrementPagination | CursorPagination,
    Field(discriminator="mode"),
]

PAGINATION_DESCRIPTION = (
    "Fetch page after page (null: one request). mode: next_url, link_header, increment or "
    "cursor (each described under Input objects in docs/cards.md). Adds the outputs items, "
    "pages and stopped_by; status_code, headers and body are the last page's."
)


def pagination_field_validator(
    value: Any, handler: ValidatorFunctionWrapHandler
) -> AnyPagination | None:
    """Validate ``pagination``, naming fields ``pagination.max_pages`` rather than with
    the mode in between (``pagination.next_url.max_pages``), and a wrong mode ``.mode``."""
    try:
        result: AnyPagination | None = handler(value)
        return result
    except ValidationError as exc:
        errors: list[InitErrorDetails] = []
        for error in exc.errors(include_url=False):
            loc, kind = tuple(error["loc"]), error["type"]
            details = InitErrorDetails(type=kind, loc=loc, input=error.get("input"))
            if "ctx" in error:
                details["ctx"] = error["ctx"]
            if loc and loc[0] in MODES:
                details["loc"] = loc[1:]  # a check across fields: the pagination object
            elif kind == "union_tag_not_found":
                details = InitErrorDetails(type="missing", loc=("mode",), input=value)
            elif kind == "union_tag_invalid":
                details = InitErrorDetails(
                    type="value_error",
                    loc=("mode",),
                    input=value,
                    ctx={"error": ValueError(f"{error['ctx']['tag']!r} is not a mode; {_MODES}")},
                )
            errors.append(details)
        raise ValidationError.from_exception_data(exc.title, errors) from None


AnyPagination = NextUrlPagination | LinkHeaderPagination | IncrementPagination | CursorPagination


def check_pagination(
    pagination: AnyPagination | None, limits: CardLimits, *, json_body: bool, body: Any = None
) -> None:
    """What the input model cannot check alone: the ceiling from the settings, and a body
    field only where there is a JSON object body to put it in (``json_body``: the card
    sends one)."""
    if pagination is None:
        return
    if pagination.max_pages > limits.max_pages:
        raise InvalidInput(
            f"{FIELD}.max_pages: {pagination.max_pages:,} is more than CARDFLOW_MAX_PAGES "
            f"({limits.max_pages:,}), the most pages one card may fetch.",
            field=f"{FIELD}.max_pages",
        )
    if (
        isinstance(pagination, IncrementPagination | CursorPagination)
        and pagination.send_in == "body"
        and not (json_body and (body is None or isinstance(body, dict)))
    ):
        raise InvalidInput(
            f"{FIELD}.send_in: body needs a card that sends a JSON object body (Post with "
            "an object body, or none); send the parameter in the query instead.",
            field=f"{FIELD}.send_in",
        )


# -- running --------------------------------------------------------------------------


@dataclass
class FirstPage:
    """The request a card built, and how it reads an answer."""

    request: OutboundRequest
    # The JSON body as an object, for a parameter sent in the body (None: no such body).
    body: dict[str, Any] | None
    # Parses an answer into the card's outputs; raises (UpstreamStatusError…) as the card
    # does for a single request.
    read: Callable[[InboundResponse], Awaitable[CardOutcome]]
    encode: Callable[[Any], Awaitable[bytes | None]]


class _Pager:
    """One paginating card's state: what it has read, and what it asks for next."""

    def __init__(self, ctx: CardContext, pagination: AnyPagination, first: FirstPage) -> None:
        self.ctx = ctx
        self.pagination = pagination
        self.first = first
        self.items: list[Any] = []
        self.pages = 0
        self.received = 0  # response bytes, all pages together
        self.items_size = 0  # the items so far, as JSON
        self.counter = _start(pagination)
        self.stopped_by = "last_page"
        self.outputs: dict[str, Any] = {}  # the last page's

    def progress(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs for a card that failed mid-way (kept with on_error: continue)."""
        return {**outputs, "items": self.items, "pages": self.pages, "stopped_by": None}

    async def fetch(self, request: OutboundRequest, deadline: float) -> InboundResponse:
        """One page, sent as the card's single request is (its timeout included), within
        what is left of the byte cap; none is started past the wall-time ``deadline``.

        A page's timeout is not cut to the deadline: in a flow the run's own timer ends the
        card at its limit, and an HTTP timer set to the same moment could win that race
        and turn the run's limit into a card failure that ``on_error: continue`` hides."""
        ctx, cap = self.ctx, self.ctx.transport.max_response_bytes
        if time.monotonic() >= deadline:
            raise self._too_long()
        room = cap - self.received
        try:
            if room <= 0:
                raise _too_large(request, cap, self.pages)
            response = await client.send(
                ctx.transport,
                request,
                timeout=ctx.timeout,
                auth=ctx.auth,
                allowed_hosts=ctx.allowed_hosts,
                secrets=ctx.secrets,
                retry=ctx.options.retry,
                hop=ctx.hop,
                max_response_bytes=room,
            )
        except ResponseTooLarge as exc:
            if self.pages == 0:
                raise  # the first page alone: the card's usual error
            raise _too_large(request, cap, self.pages).with_outputs(
                self.progress(self.outputs)
            ) from exc
        except CardFailed as exc:  # a host not allowed, the network policy, a timeout…
            if self.pages:
                exc.with_outputs(self.progress(self.outputs))
            raise
        self.pages += 1
        self.received += len(response.body)
        return response

    def _count(self, value: Any) -> None:
        """The items of all pages together are bounded as one expression's value is (an
        items expression may repeat what a page holds)."""
        limit = self.ctx.limits.max_expression_value_bytes
        room = limit - self.items_size
        size = json_size(value, room)[0]
        if size > room:
            raise InvalidInput(
                f"{FIELD}.items: the items of {self.pages} pages together are more than "
                f"{limit:,} bytes as JSON (CARDFLOW_MAX_EXPRESSION_VALUE_BYTES).",
                field=f"{FIELD}.items",
            )
        self.items_size += size

    def _too_long(self) -> UpstreamTimeout:
        error = UpstreamTimeout(
            f"Paging stopped after {self.pages} page{_s(self.pages)}: the card went over "
            f"CARDFLOW_MAX_RUN_SECONDS ({self.ctx.limits.max_run_seconds:g} s)."
        )
        error.with_outputs(self.progress(self.outputs))
        return error

    async def after(
        self, request: OutboundRequest, response: InboundResponse
    ) -> OutboundRequest | None:
        """Take in a page (its items) and say what to ask for next (None: stop, and
        ``stopped_by`` says why)."""
        pagination, limits, page = self.pagination, self.ctx.limits, self.outputs
        got = 0
        if pagination.items is not None:
            value = await _evaluate(pagination.items, page, limits, "items")
            self._count(value)
            if isinstance(value, list):
                self.items.extend(value)
                got = len(value)
            elif value is not None:
                self.items.append(value)
                got = 1
            if pagination.max_items is not None and len(self.items) >= pagination.max_items:
                del self.items[pagination.max_items :]
                self.stopped_by = "max_items"
                return None
        if pagination.stop_when is not None and _truthy(
            await _evaluate(pagination.stop_when, page, limits, "stop_when")
        ):
            self.stopped_by = "stop_when"
            return None
        following: OutboundRequest | None
        if isinstance(pagination, IncrementPagination):
            if pagination.items is not None and got == 0:
                return None  # an empty page: past the last one
            if pagination.counter == "offset" and pagination.step is None:
                self.counter += got
            else:
                self.counter += pagination.step or 1
            following = await _with_parameter(self.first, pagination, request, self.counter)
        else:
            following = await _next_request(pagination, self.first, request, response, page, limits)
        if following is not None and self.pages >= pagination.max_pages:
            self.stopped_by = "max_pages"
            return None
        return following


async def paginate(ctx: CardContext, pagination: AnyPagination, first: FirstPage) -> CardOutcome:
    """Fetch pages until there is no next one or a bound is reached."""
    pager = _Pager(ctx, pagination, first)
    deadline = time.monotonic() + ctx.limits.max_run_seconds
    request: OutboundRequest | None = first.request
    if isinstance(pagination, IncrementPagination):
        request = await _with_parameter(first, pagination, first.request, pager.counter)
    status_code: int | None = None
    while request is not None:
        response = await pager.fetch(request, deadline)
        try:
            outcome = await first.read(response)
        except CardFailed as exc:  # e.g. a non-2xx page
            raise exc.with_outputs(pager.progress(exc.outputs or {})) from None
        pager.outputs, status_code = outcome.outputs, outcome.status_code
        try:
            request = await pager.after(request, response)
        except CardFailed as exc:
            raise exc.with_outputs(pager.progress(pager.outputs)) from None
    return CardOutcome(
        {
            **pager.outputs,
            "items": pager.items,
            "pages": pager.pages,
            "stopped_by": pager.stopped_by,
        },
        status_code,
        pager.pages,
    )


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _too_large(request: OutboundRequest, cap: int, pages: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"The answers to {request.method} {safe_url(request.url)} and the pages before it "
        f"({pages} read) are together larger than {cap:,} bytes "
        "(CARDFLOW_MAX_RESPONSE_BYTES bounds all pages of a card together); paging stopped."
    )


def _start(pagination: AnyPagination) -> int:
    if isinstance(pagination, IncrementPagination):
        if pagination.start is not None:
            return pagination.start
        return 1 if pagination.counter == "page" else 0
    return 0


def _truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty text, lists and objects are false."""
    return not (value is None or value is False or value in ("", [], {}))


async def _evaluate(expression: str, page: dict[str, Any], limits: CardLimits, name: str) -> Any:
    try:
        return await search_async(_compiled(expression), page, limits)
    except JMESPathError as exc:
        raise InvalidInput(
            f"{FIELD}.{name} failed on page data: {jmespath_reason(exc)}.",
            field=f"{FIELD}.{name}",
        ) from None
    except OverBudget as exc:
        raise InvalidInput(f"{FIELD}.{name}: {exc.reason}.", field=f"{FIELD}.{name}") from None


async def _with_parameter(
    first: FirstPage, pagination: AnyPagination, request: OutboundRequest, value: Any
) -> OutboundRequest:
    """``request`` with the increment's or cursor's parameter set to ``value``."""
    if not isinstance(pagination, IncrementPagination | CursorPagination):
        return request
    name = pagination.parameter
    if pagination.send_in == "query":
        url = first.request.url.update_query({name: as_text(value)})
        return OutboundRequest(request.method, url, CIMultiDict(request.headers), request.body)
    body = {**(first.body or {}), name: value}
    headers = CIMultiDict(request.headers)
    if "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    return OutboundRequest(request.method, request.url, headers, await first.encode(body))


async def _next_request(
    pagination: AnyPagination,
    first: FirstPage,
    request: OutboundRequest,
    response: InboundResponse,
    page: dict[str, Any],
    limits: CardLimits,
) -> OutboundRequest | None:
    if isinstance(pagination, CursorPagination):
        cursor = await _evaluate(pagination.cursor, page, limits, "cursor")
        if cursor is None or cursor == "" or cursor is False:
            return None
        if isinstance(cursor, list | dict):
            raise _bad_answer(response, f"{FIELD}.cursor gave a list or object, not a cursor")
        return await _with_parameter(first, pagination, request, cursor)
    if isinstance(pagination, NextUrlPagination):
        target = await _evaluate(pagination.next, page, limits, "next")
        if target is None or target == "":
            return None
        if not isinstance(target, str):
            raise _bad_answer(response, f"{FIELD}.next gave {_kind(target)}, not a URL")
    else:
        target = next_link(response.headers.getall("Link", ()))
        if target is None:
            return None
    try:
        url = parse_http_url(str(response.url.join(URL(target))))
    except ValueError as exc:
        raise _bad_answer(response, f"the next page's URL is not usable: {exc}") from None
    # The next URL carries its own query: the card's query is not added to it again.
    return OutboundRequest(request.method, url, CIMultiDict(request.headers), request.body)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "a list or object"
    )


def _bad_answer(response: InboundResponse, reason: str) -> InvalidResponse:
    return InvalidResponse(
        f"Paging cannot go on from {safe_url(response.url)}: {reason}.",
        status_code=response.status_code,
    )


# RFC 8288: Link = #link-value; link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_LINK_VALUE = re.compile(r"\s*<([^>]*)>")
_LINK_PARAM = re.compile(rf'\s*;\s*({_TOKEN})\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?')
_SEPARATOR = re.compile(r"\s*,")


def next_link(values: Any) -> str | None:
    """The target of the first ``rel="next"`` link in these Link header values."""
    for value in values:
        position = 0
        while True:
            match = _LINK_VALUE.match(value, position)
            if match is None:
                break
            target = match.group(1)
            position = match.end()
            rels: list[str] = []
            while (param := _LINK_PARAM.match(value, position)) is not None:
                position = param.end()
                if param.group(1).lower() == "rel" and param.group(2) is not None:
                    raw = param.group(2)
                    text = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
                    rels.extend(text.lower().split())
            if "next" in rels:
                return target.strip()
            separator = _SEPARATOR.match(value, position)
            if separator is None:
                break
            position = separator.end()
    return None
