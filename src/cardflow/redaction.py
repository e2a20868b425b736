"""Keeping secrets out of everything cardflow stores, returns or logs.

A :class:`SecretSet` belongs to one piece of work — a run, a card test, a token request,
an authorization — and holds every secret that work put on the wire, in every form the
secret can take on its way back (raw, URL-encoded, JSON-escaped, base64, as in Basic
credentials). Whatever the work stores or returns goes through its redactor first:

- ``stored()`` for run history: fields named like secrets (``password``, ``token``,
  ``Authorization``…) are blanked too, whatever their value;
- ``shown()`` for answers (Test this card, a flow's Return): only the secrets' values are
  replaced, the rest is the caller's data.

``LOG_SECRETS`` does the same for log lines, process-wide.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from yarl import URL

REDACTED = "[redacted]"
# Shorter values cannot be told apart from ordinary text; fields named like secrets are
# still blanked whatever their length.
MIN_SECRET_LENGTH = 4
SENSITIVE_KEY = re.compile(
    r"token|secret|passw(or)?d|passwd|api[-_]?key|authorization|cookie|credential", re.I
)
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Fields holding a text cut short (an error's body excerpt): a secret may be cut in two at
# their end.
CUT_KEYS = frozenset({"body_excerpt"})
_QUERY_BASE = URL("http://h/")
# One-time values (see SecretSet.add_one_time) one piece of work keeps out of its data.
MAX_ONE_TIME_SECRETS = 1000
_TOO_DEEP = "[not kept: nested too deeply]"


def _read_back(value: str) -> set[str]:
    """``value`` as a server may read it back: as sent; its UTF-8 read as latin-1 (a header
    echoed by a WSGI server); in a URL's path or as a query parameter as cardflow's own
    URLs (yarl) write them ("/:@?" stay as they are), and a query parameter as aiohttp
    reads it back (decoded but for "+=&;")."""
    found = {value, value.encode("utf-8", "surrogatepass").decode("latin-1")}
    with contextlib.suppress(UnicodeError, ValueError):
        url = _QUERY_BASE.with_query(q=value)
        found.update((url.raw_query_string[2:], url.query_string[2:]))
        found.add(_QUERY_BASE.with_path("/" + value).raw_path[1:])
    return found


@lru_cache(maxsize=4096)
def secret_forms(value: str) -> frozenset[str]:
    """``value`` in every form it may take in text that comes back: raw or read back as
    above, then URL-encoded or JSON-escaped (once or twice); and base64 (standard and
    URL-safe, with and without padding)."""
    forms: set[str] = set()
    for read in _read_back(value):
        forms.update((read, quote(read, safe=""), quote(read), quote_plus(read)))
        for once in (json.dumps(read)[1:-1], json.dumps(read, ensure_ascii=False)[1:-1]):
            forms.add(once)
            # JSON text inside JSON: an echoed request body, a copied error excerpt
            forms.update((json.dumps(once)[1:-1], json.dumps(once, ensure_ascii=False)[1:-1]))
    raw = value.encode("utf-8", "surrogatepass")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode("ascii")
        forms.update((encoded, encoded.rstrip("=")))
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def forms_of(values: Iterable[str | None]) -> frozenset[str]:
    """The forms of several secrets together (empty and short values are skipped)."""
    found: set[str] = set()
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            found |= secret_forms(value)
    return frozenset(found)


def is_sensitive_key(key: object, headers: Collection[str] = SENSITIVE_HEADERS) -> bool:
    return isinstance(key, str) and (
        key.lower() in headers or SENSITIVE_KEY.search(key) is not None
    )


def sensitive_values(value: Any, headers: Collection[str] = SENSITIVE_HEADERS) -> list[str]:
    """Every text or number found under a key named like a secret."""
    found: list[str] = []
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, sensitive = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((child, sensitive or is_sensitive_key(key, headers)))
        elif isinstance(item, list):
            stack.extend((child, sensitive) for child in item)
        elif sensitive and isinstance(item, str | int | float) and not isinstance(item, bool):
            found.append(str(item))
    return found


class SecretSet:
    """The secrets one piece of work put on the wire, in all their forms."""

    __slots__ = ("_forms", "_headers", "_learned", "_one_time", "_shown", "_stored")

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._forms: frozenset[str] = forms_of(values)
        self._one_time = 0
        # What callers sent under secret names: theirs to see, never to be kept.
        self._learned: frozenset[str] = frozenset()
        self._headers: frozenset[str] = SENSITIVE_HEADERS
        self._stored: Redactor | None = None
        self._shown: Redactor | None = None

    def __bool__(self) -> bool:
        return bool(self._forms)

    @property
    def headers(self) -> frozenset[str]:
        """Header names whose values are secrets (connections' custom header names too)."""
        return self._headers

    @property
    def forms(self) -> frozenset[str]:
        """The secrets cardflow holds (credentials, tokens), in all their forms."""
        return self._forms

    def add(self, *values: str | None) -> None:
        self.add_forms(forms_of(values))

    def add_forms(self, forms: frozenset[str]) -> None:
        if forms and not forms <= self._forms:
            self._forms = self._forms | forms
            self._stored = self._shown = None

    def add_one_time(self, value: str) -> None:
        """A value made for one request (a Digest answer's hash: hex, the same in every
        encoding), kept out of what this work keeps and answers. At most
        ``MAX_ONE_TIME_SECRETS`` per work, so that a long loop does not make every later
        redaction slower and slower; past that, such values are blanked only where a
        field or header named like a secret holds them."""
        if len(value) >= MIN_SECRET_LENGTH and self._one_time < MAX_ONE_TIME_SECRETS:
            self._one_time += 1
            self.add_forms(frozenset((value,)))

    def add_header_names(self, names: Iterable[str]) -> None:
        """Headers whose values are secret whatever they hold (a Custom Header's name)."""
        lower = frozenset(name.lower() for name in names)
        if not lower <= self._headers:
            self._headers = self._headers | lower
            self._stored = None

    def add_learned(self, values: Iterable[str]) -> None:
        """Keep these out of what is stored (what a caller sent under secret names, see
        ``sensitive_values``); answers to the caller who sent them are not touched."""
        forms = forms_of(values)
        if forms and not forms <= self._learned:
            self._learned = self._learned | forms
            self._stored = None

    def stored(self) -> Redactor:
        """For what is kept: secret values and fields named like secrets are blanked."""
        if self._stored is None:
            self._stored = Redactor(self._forms | self._learned, self._headers, by_key=True)
        return self._stored

    def shown(self) -> Redactor:
        """For what is answered: only secret values are blanked."""
        if self._shown is None:
            self._shown = Redactor(self._forms, by_key=False)
        return self._shown

    def redact_text(self, text: str) -> str:
        return self.shown().text(text)


class Redactor:
    """Replaces secret values wherever they appear and, ``by_key``, blanks fields whose
    names say they hold secrets."""

    def __init__(
        self,
        forms: Collection[str] = (),
        headers: Collection[str] = SENSITIVE_HEADERS,
        *,
        by_key: bool = True,
    ) -> None:
        # Longest first, so a value containing a shorter secret is replaced whole.
        self.forms = sorted(set(forms), key=len, reverse=True)
        self.headers = frozenset(h.lower() for h in headers) | SENSITIVE_HEADERS
        self.by_key = by_key

    def __call__(self, value: Any) -> Any:
        try:
            return self._walk(value)
        except RecursionError:
            return _TOO_DEEP

    def text(self, value: str) -> str:
        for form in self.forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def cut_text(self, value: str) -> str:
        """``text`` for a text cut short: the beginning of a secret at its end is blanked
        too (a character cut in two there reads as U+FFFD)."""
        value = self.text(value)
        end = value.rstrip("\ufffd")
        cut = len(end)
        for form in self.forms:
            at = end.find(form[0], max(len(end) - len(form) + 1, 0))
            while at != -1 and len(end) - at >= MIN_SECRET_LENGTH:
                if form.startswith(end[at:]):
                    cut = min(cut, at)
                    break
                at = end.find(form[0], at + 1)
        return value if cut == len(end) else end[:cut] + REDACTED

    def _string(self, key: Any, value: str) -> str:
        return self.cut_text(value) if key in CUT_KEYS else self.text(value)

    def bounded(self, value: Any, limit: int) -> Any:
        """A redacted copy of at most about ``limit`` characters (as JSON). A value that
        had to be cut comes back as ``{"truncated": true, "limit": …, "preview": …}``;
        the cost is bounded by ``limit`` too, however large the value."""
        walker = _BoundedWalk(self, limit)
        try:
            kept = walker.walk(value)
        except RecursionError:
            return _TOO_DEEP
        if walker.cut:
            return {"truncated": True, "limit": limit, "preview": kept}
        return kept

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value) if self.forms else value
        if isinstance(value, dict):
            if self.by_key:
                return {
                    self._key(key): REDACTED
                    if is_sensitive_key(key, self.headers)
                    else self._item(key, item)
                    for key, item in value.items()
                }
            return {self._key(key): self._item(key, item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            # [name, value] pairs, as header lists often are
            if (
                self.by_key
                and len(value) == 2
                and isinstance(value[0], str)
                and is_sensitive_key(value[0], self.headers)
            ):
                return [value[0], REDACTED]
            return [self._walk(item) for item in value]
        return value

    def _item(self, key: Any, item: Any) -> Any:
        if isinstance(item, str) and key in CUT_KEYS and self.forms:
            return self.cut_text(item)
        return self._walk(item)

    def _key(self, key: Any) -> Any:
        return self.text(key) if isinstance(key, str) and self.forms else key


class _BoundedWalk:
    def __init__(self, redactor: Redactor, limit: int) -> None:
        self.redactor = redactor
        self.left = limit
        self.cut = False
        self.margin = max((len(form) for form in redactor.forms), default=0)

    def walk(self, item: Any, key: Any = None) -> Any:
        redactor = self.redactor
        if isinstance(item, str):
            if len(item) + 2 <= self.left:
                self.left -= len(item) + 2
                return redactor._string(key, item)
            # Redact a little past the cut, so no secret is left cut in half.
            keep = max(self.left, 0)
            text = redactor.text(item[: keep + self.margin])[:keep]
            self.left, self.cut = 0, True
            return text + "…"
        if isinstance(item, dict):
            out: dict[Any, Any] = {}
            self.left -= 2
            for key, child in item.items():
                if self.left <= 0:
                    self.cut = True
                    break
                self.left -= (len(key) if isinstance(key, str) else 8) + 4
                sensitive = redactor.by_key and is_sensitive_key(key, redactor.headers)
                out[redactor._key(key)] = REDACTED if sensitive else self.walk(child, key)
            return out
        if isinstance(item, list | tuple):
            if (
                redactor.by_key
                and len(item) == 2
                and isinstance(item[0], str)
                and is_sensitive_key(item[0], redactor.headers)
            ):
                return [self.walk(item[0]), REDACTED]
            items: list[Any] = []
            self.left -= 2
            for child in item:
                if self.left <= 0:
                    self.cut = True
                    break
                self.left -= 1
                items.append(self.walk(child))
            return items
        self.left -= 8
        return item


class _LogSecrets:
    """Secrets this process has loaded, so that no log line carries one (bounded: the
    oldest are forgotten first)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._forms: OrderedDict[str, None] = OrderedDict()
        self._sorted: list[str] = []
        self._lock = threading.Lock()

    def register(self, forms: Iterable[str]) -> None:
        if isinstance(forms, frozenset) and self._forms.keys() >= forms:
            return  # the usual case (a token sent again): no lock, no loop
        with self._lock:
            changed = False
            for form in forms:
                if form not in self._forms:
                    self._forms[form] = None
                    changed = True
            while len(self._forms) > self._capacity:
                self._forms.popitem(last=False)
            if changed:
                self._sorted = sorted(self._forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._sorted:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


LOG_SECRETS = _LogSecrets()
