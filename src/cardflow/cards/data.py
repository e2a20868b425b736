"""Data cards: parse and build JSON and XML, compose text, read and shape objects.

XML is parsed in two passes: defusedxml first refuses any DTD, entity or external reference
(before anything else reads the document), then xmltodict gives the xmltodict-style shape.
Nothing here reads a file or touches the network.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
from functools import lru_cache
from typing import Any, Literal
from xml.parsers.expat import ExpatError
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import InputSource

import jmespath
import xmltodict
from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser
from jmespath.exceptions import JMESPathError
from pydantic import ConfigDict, Field, field_validator

from cardflow import jsondata
from cardflow.cards.base import CardContext, CardInputs, CardOutcome, CardSpec, as_text
from cardflow.errors import InvalidInput
from cardflow.jsondata import LARGE, TooDeep, exceeds
from cardflow.search import OverBudget, jmespath_reason, search_async

MAX_TEXT_BYTES = 10 * 1024 * 1024
MAX_XML_DEPTH = 256  # deep enough for any real document; keeps outputs JSON-encodable


def _check_size(text: str, field: str, card: str) -> None:
    # A UTF-8 character is 1 to 4 bytes: only encode when the length alone cannot decide.
    size = len(text)
    if size * 4 > MAX_TEXT_BYTES and (
        size > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES
    ):
        raise InvalidInput(
            f"{field} is larger than {MAX_TEXT_BYTES // (1024 * 1024)} MiB, "
            f"the most {card} accepts.",
            field=field,
        )


# -- JSON -------------------------------------------------------------------------------


class JsonParseInputs(CardInputs):
    text: str = Field(description="JSON text.")


def _reason(exc: Exception) -> str:
    # Python's integer-size message ends with advice for programmers; keep the first clause.
    return str(exc).split(";", 1)[0].rstrip(".")


async def _json_parse(ctx: CardContext, inputs: JsonParseInputs) -> CardOutcome:
    _check_size(inputs.text, "inputs.text", "json.parse")
    depth = ctx.limits.max_nesting_depth
    try:
        value = await jsondata.loads_async(inputs.text, max_depth=depth)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"inputs.text is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            field="inputs.text",
        ) from None
    except TooDeep:
        raise InvalidInput(
            f"inputs.text nests deeper than {depth} levels (CARDFLOW_MAX_NESTING_DEPTH).",
            field="inputs.text",
        ) from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise InvalidInput(
            f"inputs.text is not valid JSON: {_reason(exc)}.", field="inputs.text"
        ) from None
    return CardOutcome({"output": value})


class JsonStringifyInputs(CardInputs):
    value: Any = Field(description="Any value: object, list, text, number, boolean or null.")
    indent: int | None = Field(
        default=None, ge=0, le=16, description="Spaces per level; null gives compact JSON."
    )


async def _json_stringify(ctx: CardContext, inputs: JsonStringifyInputs) -> CardOutcome:
    separators = (",", ":") if inputs.indent is None else (",", ": ")
    if exceeds(inputs.value, MAX_TEXT_BYTES):
        raise InvalidInput(
            f"inputs.value would be more than {MAX_TEXT_BYTES // (1024 * 1024)} MiB of JSON.",
            field="inputs.value",
        )
    encode = functools.partial(
        json.dumps,
        inputs.value,
        ensure_ascii=False,
        allow_nan=False,
        indent=inputs.indent,
        separators=separators,
    )
    try:
        text = await asyncio.to_thread(encode) if exceeds(inputs.value, LARGE) else encode()
    except RecursionError:
        raise InvalidInput("inputs.value is nested too deeply.", field="inputs.value") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"inputs.value cannot be written as JSON: {_reason(exc)}.", field="inputs.value"
        ) from None
    return CardOutcome({"text": text})


# -- XML --------------------------------------------------------------------------------


class _TooDeep(Exception):
    pass


class _DepthLimit(ContentHandler):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.depth = 0
        self.limit = limit

    def startElement(self, name: str, attrs: Any) -> None:
        self.depth += 1
        if self.depth > self.limit:
            raise _TooDeep

    def endElement(self, name: str) -> None:
        self.depth -= 1


def check_xml(
    data: bytes, field: str, *, built: bool = False, max_depth: int = MAX_XML_DEPTH
) -> None:
    """Refuse anything but plain, well-formed UTF-8 XML: no DTD, entities or references.

    ``built`` says the XML was written from ``field`` (positions are then in that XML).
    """
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setContentHandler(_DepthLimit(max_depth))
    source = InputSource()
    source.setByteStream(io.BytesIO(data))
    source.setEncoding("utf-8")  # the text is already decoded; ignore any declared encoding
    try:
        parser.parse(source)
    except DefusedXmlException:
        raise InvalidInput(
            f"{field} has a document type declaration (<!DOCTYPE …>), entity or external "
            "reference; these are refused so that nothing is expanded, read or fetched.",
            field=field,
        ) from None
    except SAXParseException as exc:
        column = (exc.getColumnNumber() or 0) + 1  # expat counts columns from 0
        where = f"line {exc.getLineNumber()}, column {column}"
        raise InvalidInput(
            f"{field} does not give well-formed XML: {exc.getMessage()} at {where} of the "
            "XML built."
            if built
            else f"{field} is not well-formed XML: {exc.getMessage()} at {where}.",
            field=field,
        ) from None
    except _TooDeep:
        raise InvalidInput(
            f"{field} nests elements more than {max_depth} levels deep "
            "(CARDFLOW_MAX_NESTING_DEPTH).",
            field=field,
        ) from None


def _utf8(text: str, field: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field} holds a lone surrogate character, which cannot be XML.", field=field
        ) from None


class XmlParseInputs(CardInputs):
    text: str = Field(description="An XML document (no DTD; at most 10 MiB).")


def _parse_xml(text: str, max_depth: int) -> Any:
    data = _utf8(text, "inputs.text")
    check_xml(data, "inputs.text", max_depth=max_depth)
    try:
        return xmltodict.parse(data, encoding="utf-8", disable_entities=True)
    except (ExpatError, ValueError) as exc:  # check_xml has already refused these
        raise InvalidInput(
            f"inputs.text is not well-formed XML: {exc}.", field="inputs.text"
        ) from None


async def _xml_parse(ctx: CardContext, inputs: XmlParseInputs) -> CardOutcome:
    _check_size(inputs.text, "inputs.text", "xml.parse")
    # xmltodict calls back into Python for every element: in a thread, a large document
    # leaves the event loop free between callbacks.
    depth = ctx.limits.max_nesting_depth
    if len(inputs.text) > LARGE:
        value = await asyncio.to_thread(_parse_xml, inputs.text, depth)
    else:
        value = _parse_xml(inputs.text, depth)
    return CardOutcome({"output": value})


class XmlBuildInputs(CardInputs):
    value: Any = Field(
        description='An object with one root key, xmltodict-style: "@name" for attributes, '
        '"#text" for text, lists for repeated elements.'
    )
    pretty: bool = Field(default=False, description="Indent with two spaces, one element a line.")

    @field_validator("value")
    @classmethod
    def _one_root(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError('must be an object with one root key, e.g. {"user": {...}}')
        if len(value) != 1:
            raise ValueError(f"must have exactly one root key, not {len(value)}")
        root = next(iter(value))
        if not isinstance(root, str) or root.startswith(("@", "#")):
            raise ValueError(f"the root key {root!r} is not an element name")
        return value


async def _xml_build(ctx: CardContext, inputs: XmlBuildInputs) -> CardOutcome:
    if exceeds(inputs.value, MAX_TEXT_BYTES):
        raise InvalidInput(
            f"inputs.value would be more than {MAX_TEXT_BYTES // (1024 * 1024)} MiB of XML.",
            field="inputs.value",
        )
    unparse = functools.partial(
        xmltodict.unparse, inputs.value, pretty=inputs.pretty, indent="  ", full_document=True
    )
    try:
        text: str = await asyncio.to_thread(unparse) if exceeds(inputs.value, LARGE) else unparse()
    except RecursionError:
        raise InvalidInput("inputs.value is nested too deeply.", field="inputs.value") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"inputs.value cannot be XML: {exc}.", field="inputs.value") from None
    # xmltodict does not check everything (names like "1a", control characters in text).
    check_xml(_utf8(text, "inputs.value"), "inputs.value", built=True)
    return CardOutcome({"text": text})


# -- Text -------------------------------------------------------------------------------


class TextComposeInputs(CardInputs):
    template: str = Field(
        description="Text with {{ … }} expressions. In a flow they are filled in before the "
        "card runs; run alone, the text comes back as written."
    )

    @field_validator("template", mode="before")
    @classmethod
    def _to_text(cls, value: Any) -> str:
        # A template that is exactly "{{ expr }}" arrives as the expression's typed value.
        return as_text(value)


async def _text_compose(ctx: CardContext, inputs: TextComposeInputs) -> CardOutcome:
    return CardOutcome({"text": inputs.template})


# -- Object -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _compile_path(path: str) -> Any:
    return jmespath.compile(path)


class ObjectGetInputs(CardInputs):
    object: Any = Field(description="Any value: usually an object or a list.")
    path: str = Field(
        min_length=1, description="JMESPath expression, e.g. user.name or items[?active].id."
    )
    on_missing: Literal["null", "fail"] = Field(
        default="null",
        description="When the path matches nothing: output null (and found: false), or fail.",
    )

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:  # checked when the flow is saved too, when the path is written as it is
            _compile_path(value)
        except JMESPathError as exc:
            raise ValueError(f"not a valid JMESPath expression: {jmespath_reason(exc)}") from None
        return value


async def _object_get(ctx: CardContext, inputs: ObjectGetInputs) -> CardOutcome:
    expression = _compile_path(inputs.path)  # it compiled when the inputs were checked
    try:
        value = await search_async(expression, inputs.object, ctx.limits)
    except JMESPathError as exc:  # e.g. a function given the wrong type
        raise InvalidInput(
            f"inputs.path failed on this object: {jmespath_reason(exc)}.", field="inputs.path"
        ) from None
    except OverBudget as exc:
        raise InvalidInput(f"inputs.path: {exc.reason}.", field="inputs.path") from None
    if value is None and inputs.on_missing == "fail":
        raise InvalidInput(
            f"inputs.path: {inputs.path!r} matches nothing in the object (or a null); "
            "set on_missing to null to go on with null.",
            field="inputs.path",
        )
    return CardOutcome({"output": value, "found": value is not None})


class ObjectConstructInputs(CardInputs):
    model_config = ConfigDict(extra="allow")


async def _object_construct(ctx: CardContext, inputs: ObjectConstructInputs) -> CardOutcome:
    return CardOutcome({"output": dict(inputs.model_extra or {})})


_SOAP = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soap:Body><user id="7"><name>Ada</name><role>admin</role><role>dev</role></user>'
    "</soap:Body></soap:Envelope>"
)

CARDS: tuple[CardSpec, ...] = (
    CardSpec(
        id="json.parse",
        family="JSON",
        title="Parse JSON",
        description="Parse JSON text into a value (object, list, text, number, boolean or null).",
        inputs=JsonParseInputs,
        run=_json_parse,
        outputs=("output",),
        example={"text": '{"user": {"name": "Ada", "roles": ["admin", "dev"]}}'},
    ),
    CardSpec(
        id="json.stringify",
        family="JSON",
        title="Stringify JSON",
        description="Write a value as JSON text: compact, or indented when indent is set.",
        inputs=JsonStringifyInputs,
        run=_json_stringify,
        outputs=("text",),
        example={"value": {"name": "Ada", "roles": ["admin", "dev"]}, "indent": 2},
    ),
    CardSpec(
        id="xml.parse",
        family="XML",
        title="Parse XML",
        description="Parse XML into an object, xmltodict-style (@name attributes, #text text, "
        "lists for repeats, prefixes as written); DTDs and entities are refused.",
        inputs=XmlParseInputs,
        run=_xml_parse,
        outputs=("output",),
        example={"text": _SOAP},
    ),
    CardSpec(
        id="xml.build",
        family="XML",
        title="Build XML",
        description="Write an xmltodict-style object with one root key as an XML document.",
        inputs=XmlBuildInputs,
        run=_xml_build,
        outputs=("text",),
        example={
            "value": {"user": {"@id": "7", "name": "Ada", "role": ["admin", "dev"]}},
            "pretty": True,
        },
    ),
    CardSpec(
        id="text.compose",
        family="Text",
        title="Compose Text",
        description="Text from a template whose {{ … }} expressions the flow fills in.",
        inputs=TextComposeInputs,
        run=_text_compose,
        outputs=("text",),
        example={"template": "Hello {{ steps.user.output.name }}, ticket {{ trigger.body.id }}."},
    ),
    CardSpec(
        id="object.get",
        family="Object",
        title="Get",
        description="Read a value out of an object or list with a JMESPath expression.",
        inputs=ObjectGetInputs,
        run=_object_get,
        outputs=("output", "found"),
        example={
            "object": {"users": [{"name": "Ada", "active": True}, {"name": "Alan"}]},
            "path": "users[?active].name",
        },
    ),
    CardSpec(
        id="object.construct",
        family="Object",
        title="Construct",
        description="Make an object of exactly the keys given as inputs.",
        inputs=ObjectConstructInputs,
        run=_object_construct,
        outputs=("output",),
        example={"name": "Ada", "email": "ada@example.com", "active": True},
    ),
)
