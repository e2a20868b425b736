"""JSON from and to the outside world: bounded in nesting and size, clean, and gentle with
the event loop.

Data that callers and upstreams send is untrusted: it may nest thousands of levels deep
(every recursive walker, the JSON encoder and PostgreSQL's json type included, then
fails), carry lone surrogates (``"\\ud800"``, which no UTF-8 encoder, database or HTTP
response can write), NaN or Infinity (not JSON), or be megabytes long. Parsing or writing
megabytes is one long C call that holds the GIL, so every other request waits: large
documents are parsed and written in a worker thread through Python-level hooks, which lets
the interpreter switch back to the event loop every few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Beyond this many characters of JSON, parsing and writing leave the event loop.
LARGE = 256 * 1024
DEFAULT_MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
# In JSON text, a surrogate can only arrive as an escape (the text was decoded from UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class TooDeep(ValueError):
    """A document nests deeper than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"it nests deeper than {limit} levels")
        self.limit = limit


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    if text.isascii():  # the usual case, answered in C without a regex
        return text
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def clean(value: Any) -> Any:
    """A copy of a JSON-like value whose strings (keys too) hold no lone surrogate."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    return value


def check_depth(value: Any, limit: int) -> None:
    """Raise TooDeep when lists and objects nest more than ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            raise TooDeep(limit)
        for child in children:
            if isinstance(child, dict | list):
                push((child, depth + 1))
    # (strings, numbers and the like never go on the stack)


def _checked_depth(value: Any, limit: int) -> Any:
    if isinstance(value, dict | list):
        check_depth(value, limit)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def loads(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, yielding: bool = False) -> Any:
    """Parse JSON text (on the calling thread): ValueError when it is not JSON (NaN and
    out-of-range numbers included), TooDeep when it nests too deeply. ``yielding`` (in a
    worker thread, for large text) lets the event loop's thread take the GIL meanwhile."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        # yielding: a Python call per object and number, so the GIL can change hands
        value = _YIELDING_DECODER.decode(text) if yielding else _decode(text)
    except RecursionError:
        raise TooDeep(max_depth) from None
    if text.count("[") + text.count("{") > max_depth:  # else it cannot nest that deep
        value = _checked_depth(value, max_depth)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        value = clean(value)
    return value


def parse_problem(exc: ValueError) -> str:
    """Why :func:`loads` refused a text, for people: "expecting value at line 2, column 12"."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg[:1].lower()}{exc.msg[1:]} at line {exc.lineno}, column {exc.colno}"
    return str(exc).splitlines()[0] if str(exc) else "it does not parse"


async def loads_async(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """:func:`loads`, in a worker thread when the text is large."""
    if len(text) <= LARGE:
        return loads(text, max_depth=max_depth)
    return await off_loop(loads, text, max_depth=max_depth, yielding=True)


# One large parse or write at a time per event loop (see off_loop).
_LARGE_WORK: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def off_loop(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker thread, one such call at a time per event loop.

    Parsing or writing a large document still holds the GIL in long stretches (a string of
    megabytes is one C call, hooks or not). Several of them side by side starve the event
    loop's thread, which gives the GIL up at every poll and must win it back from each in
    turn (60 callers sending 9 MiB: /healthz stalled for seconds with 6 threads parsing,
    under 60 ms with one), and they would take every worker thread from other requests."""
    loop = asyncio.get_running_loop()
    gate = _LARGE_WORK.get(loop)
    if gate is None:
        gate = _LARGE_WORK.setdefault(loop, asyncio.Semaphore(1))
    async with gate:
        return await asyncio.to_thread(fn, *args, **kwargs)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)


def _int(text: str) -> int:
    return int(text)


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``; a document without whitespace around it (the usual
    answer) is scanned in one call, anything else (errors too) goes through ``decode``
    for its exact answer."""
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        return _DECODER.decode(text)
    return value if end == len(text) else _DECODER.decode(text)


# Built once: json.loads builds a decoder on every call that passes hooks.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)
_YIELDING_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant,
    parse_float=_finite,
    parse_int=_int,
    object_pairs_hook=_pairs,
)
# The scanner decode calls (set by JSONDecoder.__init__; typeshed does not list it).
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]


def dumps(value: Any, *, compact: bool = False) -> str:
    """JSON text (UTF-8 friendly: non-ASCII is kept, lone surrogates are replaced)."""
    separators = (",", ":") if compact else None
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=separators)
    return clean_text(text)


async def dumps_async(value: Any, *, compact: bool = False) -> str:
    """:func:`dumps`, in a worker thread (through the pure-Python encoder, which lets the
    event loop run) when the value is large."""
    if not exceeds(value, LARGE):
        return dumps(value, compact=compact)
    return await off_loop(_dumps_yielding, value, compact)


def _dumps_yielding(value: Any, compact: bool) -> str:
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":") if compact else (", ", ": "),
    )
    return clean_text("".join(encoder.iterencode(value)))


def exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` written as JSON would be longer than about ``limit`` characters.

    Stops as soon as it knows, so its cost is bounded by ``limit``, not by the value (shared
    sub-values, as YAML aliases make, count each time they appear)."""
    return json_size(value, limit)[0] > limit


def json_size(value: Any, limit: int) -> tuple[int, int]:
    """(about how long ``value`` is as JSON, nodes looked at), stopping past ``limit``."""
    total = 0
    nodes = 0
    stack = [value]
    pop = stack.pop
    while stack:
        item = pop()
        nodes += 1
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total > limit:
                break
            for key, child in item.items():
                total += len(key) if isinstance(key, str) else 8
                stack.append(child)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            if total > limit:
                break
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            break
    return total, nodes
