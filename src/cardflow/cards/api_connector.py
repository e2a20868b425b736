"""API Connector cards: Get, Post, Put, Patch, Delete and Raw Request."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from functools import lru_cache
from typing import Any

from multidict import CIMultiDict
from pydantic import Field, ValidatorFunctionWrapHandler, field_validator
from yarl import URL

from cardflow import jsondata
from cardflow.cards.base import CardContext, CardInputs, CardLimits, CardOutcome, CardSpec
from cardflow.cards.pagination import (
    PAGINATION_DESCRIPTION,
    AnyPagination,
    FirstPage,
    Pagination,
    check_pagination,
    paginate,
    pagination_field_validator,
)
from cardflow.errors import InvalidInput, InvalidResponse, UpstreamStatusError
from cardflow.jsondata import LARGE, TooDeep, clean_text, exceeds
from cardflow.net import client
from cardflow.net.headers import HeaderName, HeaderValue, check_method
from cardflow.net.transport import InboundResponse, OutboundRequest, header_dict
from cardflow.net.urls import check_relative_url, is_relative_url, parse_http_url, resolve_url

Scalar = str | int | float | bool | None
QueryValue = Scalar | list[Scalar]
_EXCERPT = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024  # a JSON request body a card builds


class RequestInputs(CardInputs):
    url: str = Field(
        description="Absolute http:// or https:// URL, or a path (/user, repos/a/b?x=1) "
        "appended to the connection's base_url."
    )
    query: dict[str, QueryValue] = Field(
        default_factory=dict, description="Query parameters, added to any already in the URL."
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Request headers."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if is_relative_url(value):
            check_relative_url(value)
        else:
            parse_http_url(value)
        return value


class BodyInputs(RequestInputs):
    body: Any = Field(
        default=None, description="An object or list (sent as JSON) or text (sent as it is)."
    )

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            if exceeds(value, MAX_BODY_BYTES):
                raise ValueError(f"the body is larger than {MAX_BODY_BYTES // 2**20} MiB as JSON")
            if not exceeds(value, LARGE):  # a large body is checked as it is encoded
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError, RecursionError) as exc:
                    raise ValueError(f"the body cannot be encoded as JSON ({exc})") from None
        return value


def _pagination_field() -> Any:
    return Field(default=None, description=PAGINATION_DESCRIPTION)


def _validate_pagination(
    cls: type[CardInputs], value: Any, handler: ValidatorFunctionWrapHandler
) -> Any:
    return pagination_field_validator(value, handler)


class GetInputs(RequestInputs):
    pagination: Pagination | None = _pagination_field()

    _pagination = field_validator("pagination", mode="wrap")(_validate_pagination)


class PostInputs(BodyInputs):
    pagination: Pagination | None = _pagination_field()

    _pagination = field_validator("pagination", mode="wrap")(_validate_pagination)


class RawInputs(RequestInputs):
    method: str = Field(description="Any HTTP method, e.g. PROPFIND or POST.")
    body: str | None = Field(default=None, description="Text sent byte for byte (UTF-8).")
    pagination: Pagination | None = _pagination_field()

    _pagination = field_validator("pagination", mode="wrap")(_validate_pagination)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return check_method(value)


def _check_paginated(inputs: GetInputs | PostInputs | RawInputs, limits: CardLimits) -> None:
    """Pagination's checks against the settings (the card's ``check``)."""
    pagination = inputs.pagination
    if pagination is not None:
        if isinstance(inputs, PostInputs):
            check_pagination(pagination, limits, json_body=True, body=inputs.body)
        else:
            check_pagination(pagination, limits, json_body=False)


def build_url(url: str, query: dict[str, QueryValue], base_url: str | None = None) -> URL:
    """The card's URL (a path is appended to its connection's ``base_url``) and query."""
    try:
        base = resolve_url(url, base_url)
    except ValueError as exc:
        raise InvalidInput(f"inputs.url: {exc}.", field="inputs.url") from None
    if not query:
        return base
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((key, text))
    return base.extend_query(pairs)


async def encode_json_body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8", "replace")
    try:
        return (await jsondata.dumps_async(body, compact=False)).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(
            f"The body cannot be encoded as JSON: {exc}.", field="inputs.body"
        ) from None


@lru_cache(maxsize=256)  # answers of one API say the same thing
def media_type(content_type: str) -> tuple[str, str | None]:
    """``application/json; charset=utf-8`` → (``application/json``, ``utf-8``)."""
    main, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"').strip()
    return main.strip().lower(), charset


def is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def decode_text(body: bytes, charset: str | None) -> str:
    try:
        text = body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    # a UTF-16 answer may hold lone surrogates
    return text if text.isascii() else clean_text(text)


async def parse_body(response: InboundResponse, *, strict: bool, max_depth: int) -> Any:
    """JSON when the content type says JSON, else text; empty is None."""
    if not response.body:
        return None
    mime, charset = media_type(response.headers.get("Content-Type", ""))
    if is_json(mime):
        text = decode_text(response.body, charset)
        try:
            if len(text) <= LARGE:  # small: parsed right here, without another coroutine
                return jsondata.loads(text, max_depth=max_depth)
            return await jsondata.loads_async(text, max_depth=max_depth)
        except TooDeep:
            raise InvalidResponse(
                f"The response's JSON nests deeper than {max_depth} levels "
                "(CARDFLOW_MAX_NESTING_DEPTH).",
                status_code=response.status_code,
                headers=header_dict(response.headers),
                body_excerpt=decode_text(response.body[:_EXCERPT], charset),
            ) from None
        except ValueError as exc:
            if strict:
                raise InvalidResponse(
                    f"The response says Content-Type {mime} but its body is not valid JSON "
                    f"({exc}).",
                    status_code=response.status_code,
                    headers=header_dict(response.headers),
                    body_excerpt=decode_text(response.body[:_EXCERPT], charset),
                ) from None
    return decode_text(response.body, charset)


def send(ctx: CardContext, request: OutboundRequest) -> Coroutine[Any, Any, InboundResponse]:
    """Send with the card's connection (auth, allowed hosts) and retry policy (the
    client's coroutine itself: one frame less on the hot path)."""
    return client.send(
        ctx.transport,
        request,
        timeout=ctx.timeout,
        auth=ctx.auth,
        allowed_hosts=ctx.allowed_hosts,
        secrets=ctx.secrets,
        retry=ctx.options.retry,
        hop=ctx.hop,
    )


def _outcome(response: InboundResponse, body: Any) -> CardOutcome:
    outputs = {
        "status_code": response.status_code,
        "headers": header_dict(response.headers),
        "body": body,
    }
    if not 200 <= response.status_code < 300:
        raise UpstreamStatusError(
            f"The upstream answered {response.status_code}.",
            status_code=response.status_code,
            headers=outputs["headers"],
            body_excerpt=_excerpt(response),
        ).with_outputs(outputs)
    return CardOutcome(outputs, response.status_code)


def _excerpt(response: InboundResponse) -> str:
    _, charset = media_type(response.headers.get("Content-Type", ""))
    return decode_text(response.body[:_EXCERPT], charset)


def _json_card(method: str, *, paginated: bool = False) -> Any:
    async def run(ctx: CardContext, inputs: RequestInputs) -> CardOutcome:
        body = await encode_json_body(inputs.body) if isinstance(inputs, BodyInputs) else None
        headers = CIMultiDict(inputs.headers)
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        request = OutboundRequest(
            method, build_url(inputs.url, inputs.query, ctx.base_url), headers, body
        )
        if paginated and inputs.pagination is not None:  # type: ignore[attr-defined]
            return await _paginate_json(ctx, inputs, request)
        response = await send(ctx, request)
        ok = 200 <= response.status_code < 300
        body = await parse_body(response, strict=ok, max_depth=ctx.limits.max_nesting_depth)
        return _outcome(response, body)

    return run


async def _paginate_json(
    ctx: CardContext, inputs: RequestInputs, request: OutboundRequest
) -> CardOutcome:
    pagination: AnyPagination = inputs.pagination  # type: ignore[attr-defined]
    depth = ctx.limits.max_nesting_depth

    async def read(response: InboundResponse) -> CardOutcome:
        ok = 200 <= response.status_code < 300
        return _outcome(response, await parse_body(response, strict=ok, max_depth=depth))

    body = inputs.body if isinstance(inputs, BodyInputs) else None
    first = FirstPage(request, body if isinstance(body, dict) else None, read, encode_json_body)
    return await paginate(ctx, pagination, first)


async def _read_raw(response: InboundResponse) -> CardOutcome:
    _, charset = media_type(response.headers.get("Content-Type", ""))
    return _outcome(response, decode_text(response.body, charset))


async def _raw(ctx: CardContext, inputs: RawInputs) -> CardOutcome:
    body = inputs.body.encode("utf-8", "replace") if inputs.body is not None else None
    request = OutboundRequest(
        inputs.method,
        build_url(inputs.url, inputs.query, ctx.base_url),
        CIMultiDict(inputs.headers),
        body,
    )
    if inputs.pagination is not None:
        return await paginate(
            ctx, inputs.pagination, FirstPage(request, None, _read_raw, encode_json_body)
        )
    response = await send(ctx, request)
    _, charset = media_type(response.headers.get("Content-Type", ""))
    return _outcome(response, decode_text(response.body, charset))


_OUTPUTS = ("status_code", "headers", "body")
# With pagination: the items of every page, how many pages, and why it stopped.
_PAGED_OUTPUTS = (*_OUTPUTS, "items", "pages", "stopped_by")
_EXAMPLE_URL = "https://api.example.com/v1/users"


def _spec(method: str, inputs: type[CardInputs], description: str) -> CardSpec:
    example: dict[str, Any] = {"url": _EXAMPLE_URL, "query": {"limit": 10}}
    if issubclass(inputs, BodyInputs):
        example["body"] = {"name": "Ada"}
    paginated = inputs in (GetInputs, PostInputs)
    if inputs is GetInputs:
        example["pagination"] = {"mode": "next_url", "next": "body.next", "items": "body.data"}
    return CardSpec(
        id=f"api_connector.{method.lower()}",
        family="API Connector",
        title=method.capitalize(),
        description=description,
        inputs=inputs,
        run=_json_card(method, paginated=paginated),
        uses_connection=True,
        outputs=_PAGED_OUTPUTS if paginated else _OUTPUTS,
        example=example,
        check=_check_paginated if paginated else None,
    )


_PAGES = " With pagination, fetches page after page and combines their items."

CARDS = (
    _spec(
        "GET",
        GetInputs,
        "GET a URL with the connection's auth; JSON answers are parsed." + _PAGES,
    ),
    _spec("POST", PostInputs, "POST a JSON (or text) body with the connection's auth." + _PAGES),
    _spec("PUT", BodyInputs, "PUT a JSON (or text) body with the connection's auth."),
    _spec("PATCH", BodyInputs, "PATCH a JSON (or text) body with the connection's auth."),
    _spec("DELETE", BodyInputs, "DELETE with the connection's auth; the body is optional."),
    CardSpec(
        id="api_connector.raw_request",
        family="API Connector",
        title="Raw Request",
        description="Any method; the body is sent byte for byte and the answer returned as "
        "text, unparsed (XML/SOAP, form-encoded and other formats)." + _PAGES,
        inputs=RawInputs,
        run=_raw,
        uses_connection=True,
        outputs=_PAGED_OUTPUTS,
        example={
            "url": "https://soap.example.com/service",
            "method": "POST",
            "headers": {"Content-Type": "text/xml; charset=utf-8"},
            "body": "<Envelope/>",
        },
        check=_check_paginated,
    ),
)
