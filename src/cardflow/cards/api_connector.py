"""API Connector cards: Get, Post, Put, Patch, Delete and Raw Request."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from multidict import CIMultiDict
from pydantic import AfterValidator, Field, field_validator
from yarl import URL

from cardflow import jsondata
from cardflow.cards.base import CardContext, CardInputs, CardOutcome, CardSpec
from cardflow.errors import InvalidInput, InvalidResponse, UpstreamStatusError
from cardflow.jsondata import LARGE, TooDeep, clean_text, exceeds
from cardflow.net.headers import check_header_name, check_header_value
from cardflow.net.transport import InboundResponse, OutboundRequest, header_dict
from cardflow.net.urls import parse_http_url
from cardflow.redaction import LOG_SECRETS, forms_of

HeaderName = Annotated[str, AfterValidator(check_header_name)]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]
Scalar = str | int | float | bool | None
QueryValue = Scalar | list[Scalar]
_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_EXCERPT = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024  # a JSON request body a card builds


class RequestInputs(CardInputs):
    url: str = Field(description="Absolute http:// or https:// URL.")
    query: dict[str, QueryValue] = Field(
        default_factory=dict, description="Query parameters, added to any already in the URL."
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Request headers."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
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


class RawInputs(RequestInputs):
    method: str = Field(description="Any HTTP method, e.g. PROPFIND or POST.")
    body: str | None = Field(default=None, description="Text sent byte for byte (UTF-8).")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _METHOD.match(value):
            raise ValueError(f"{value!r} is not an HTTP method")
        return value.upper()


def build_url(url: str, query: dict[str, QueryValue]) -> URL:
    base = parse_http_url(url)
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
    return clean_text(text)  # a UTF-16 answer may hold lone surrogates


async def parse_body(response: InboundResponse, *, strict: bool, max_depth: int) -> Any:
    """JSON when the content type says JSON, else text; empty is None."""
    if not response.body:
        return None
    mime, charset = media_type(response.headers.get("Content-Type", ""))
    if is_json(mime):
        try:
            return await jsondata.loads_async(
                decode_text(response.body, charset), max_depth=max_depth
            )
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


def retry_delay(response: InboundResponse, attempt: int, max_wait: float) -> float | None:
    """Seconds to wait before retrying, or None when this response is not retried."""
    status = response.status_code
    retry_after = response.headers.get("Retry-After")
    if status != 429 and not (status == 503 and retry_after):
        return None
    delay: float | None = None
    if retry_after:
        try:
            delay = float(retry_after)
        except ValueError:
            try:
                delay = parsedate_to_datetime(retry_after).timestamp() - time.time()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = random.uniform(0, min(max_wait, 0.5 * 2**attempt))  # noqa: S311 - jitter
    return max(0.0, min(delay, max_wait))


async def send(ctx: CardContext, request: OutboundRequest) -> InboundResponse:
    """Send with the connection's auth and the card's retry policy."""
    policy = ctx.options.retry
    attempt = 0
    while True:
        response = await _send_authenticated(ctx, request)
        if attempt < policy.count:
            delay = retry_delay(response, attempt, policy.max_wait)
            if delay is not None:
                attempt += 1
                await asyncio.sleep(delay)
                continue
        return response


async def _send_authenticated(ctx: CardContext, request: OutboundRequest) -> InboundResponse:
    # Auths set their headers idempotently, so a retry may reuse the same request.
    transport = ctx.transport
    auth = ctx.auth
    if auth is None:
        return await transport.send(request, timeout=ctx.timeout, hop=ctx.hop)
    strip = auth.added_headers
    allowed = ctx.allowed_hosts
    static = auth.static_headers()
    if static is not None:
        # The same as driving the auth flow, for auths that never retry (Basic, Custom
        # Header, None), without the generator's cost: this is the hot path.
        for name, value in static.items():
            request.headers.popall(name, None)
            request.headers[name] = value
        return await transport.send(
            request,
            timeout=ctx.timeout,
            strip_on_cross_origin=strip,
            allowed_hosts=allowed,
            hop=ctx.hop,
        )
    if allowed is not None:
        allowed.check(request.url)  # before the auth flow may even fetch a token
    flow = auth.async_auth_flow(request)
    outgoing = await flow.__anext__()
    while True:
        _note_secrets(ctx, outgoing, strip)
        response = await transport.send(
            outgoing,
            timeout=ctx.timeout,
            strip_on_cross_origin=strip,
            allowed_hosts=allowed,
            hop=ctx.hop,
        )
        try:
            outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return response


def _note_secrets(ctx: CardContext, request: OutboundRequest, names: frozenset[str]) -> None:
    """What the auth put in its headers (a token fetched just now) is a secret of the run."""
    secrets = ctx.secrets
    for name in names:
        value = request.headers.get(name)
        if value:
            _scheme, _, credentials = value.partition(" ")
            if secrets is not None:
                secrets.add(value, credentials)
            LOG_SECRETS.register(forms_of((value, credentials)))


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


def _json_card(method: str) -> Any:
    async def run(ctx: CardContext, inputs: RequestInputs) -> CardOutcome:
        body = await encode_json_body(inputs.body) if isinstance(inputs, BodyInputs) else None
        headers = CIMultiDict(inputs.headers)
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        request = OutboundRequest(method, build_url(inputs.url, inputs.query), headers, body)
        response = await send(ctx, request)
        ok = 200 <= response.status_code < 300
        body = await parse_body(response, strict=ok, max_depth=ctx.limits.max_nesting_depth)
        return _outcome(response, body)

    return run


async def _raw(ctx: CardContext, inputs: RawInputs) -> CardOutcome:
    body = inputs.body.encode("utf-8", "replace") if inputs.body is not None else None
    request = OutboundRequest(
        inputs.method, build_url(inputs.url, inputs.query), CIMultiDict(inputs.headers), body
    )
    response = await send(ctx, request)
    _, charset = media_type(response.headers.get("Content-Type", ""))
    return _outcome(response, decode_text(response.body, charset))


_OUTPUTS = ("status_code", "headers", "body")
_EXAMPLE_URL = "https://api.example.com/v1/users"


def _spec(method: str, inputs: type[CardInputs], description: str) -> CardSpec:
    example: dict[str, Any] = {"url": _EXAMPLE_URL, "query": {"limit": 10}}
    if inputs is BodyInputs:
        example["body"] = {"name": "Ada"}
    return CardSpec(
        id=f"api_connector.{method.lower()}",
        family="API Connector",
        title=method.capitalize(),
        description=description,
        inputs=inputs,
        run=_json_card(method),
        uses_connection=True,
        outputs=_OUTPUTS,
        example=example,
    )


CARDS = (
    _spec("GET", RequestInputs, "GET a URL with the connection's auth; JSON answers are parsed."),
    _spec("POST", BodyInputs, "POST a JSON (or text) body with the connection's auth."),
    _spec("PUT", BodyInputs, "PUT a JSON (or text) body with the connection's auth."),
    _spec("PATCH", BodyInputs, "PATCH a JSON (or text) body with the connection's auth."),
    _spec("DELETE", BodyInputs, "DELETE with the connection's auth; the body is optional."),
    CardSpec(
        id="api_connector.raw_request",
        family="API Connector",
        title="Raw Request",
        description="Any method; the body is sent byte for byte and the answer returned as "
        "text, unparsed (XML/SOAP, form-encoded and other formats).",
        inputs=RawInputs,
        run=_raw,
        uses_connection=True,
        outputs=_OUTPUTS,
        example={
            "url": "https://soap.example.com/service",
            "method": "POST",
            "headers": {"Content-Type": "text/xml; charset=utf-8"},
            "body": "<Envelope/>",
        },
    ),
)
