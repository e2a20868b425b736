"""A :class:`CurlRequest` → the API Connector card that makes the same request, and the
connection its credentials should go to.

Decisions (README "cURL import"):
- GET/POST/PUT/PATCH/DELETE get their own card; any other method, and a GET with a body
  (Elasticsearch's ``curl -X GET … -d '{…}'``), a Raw Request card.
- The URL's query string goes to the card's ``query`` input (values decoded, a repeated
  name as a list), and ``-G`` data with it; a query that is not all ``name=value`` pairs
  (``?pretty``) stays in the URL as typed, whole.
- A body is a JSON value when its content type is JSON (``--json``, or a JSON
  ``Content-Type``), or when curl would have called it form data but it is a JSON object or
  list (docs often forget the header; the card then says ``application/json``). Other
  ``-d`` data stay text, with curl's implied form content type written out.
- ``-F`` fields: cards cannot send multipart/form-data; text fields go as a form-encoded
  body, files are left out, and warnings say both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from pydantic import ValidationError

from cardflow import jsondata
from cardflow.cards.curl.credentials import (
    ConnectionProposal,
    basic_from_header,
    basic_proposal,
    header_proposal,
    is_credential_header,
    query_proposal,
)
from cardflow.cards.curl.options import CurlRequest, Data, DataPart, read_options
from cardflow.cards.curl.words import FIELD, split_command
from cardflow.cards.registry import get_card
from cardflow.errors import InvalidInput
from cardflow.net.headers import check_method

_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
JSON_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FORM = "application/x-www-form-urlencoded"
# Query parameters named like credentials: left empty in the card, never stored in a flow.
_CREDENTIAL_PARAM = re.compile(
    r"^(?:api[-_]?key|apikey|appid|key|access[-_]?token|auth[-_]?token|api[-_]?token|token"
    r"|secret|client[-_]?secret"
    r"|password|passwd|sig|signature)$",
    re.IGNORECASE,
)


@dataclass
class CurlImport:
    """The card a curl command makes, the connection it proposes, and what to know."""

    card: dict[str, Any]
    connection: ConnectionProposal | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self, *, show_secrets: bool = True) -> dict[str, Any]:
        proposal = None
        if self.connection is not None:
            proposal = self.connection.to_dict() if show_secrets else self.connection.masked()
        return {"card": self.card, "connection": proposal, "warnings": list(self.warnings)}


def import_curl(command: str) -> CurlImport:
    """The card for a pasted curl command, or InvalidInput (field ``command``)."""
    words = split_command(command)
    request = read_options(words.args)
    warnings = [*words.warnings, *request.warnings]
    url, query_string = _url(request, warnings)
    method = _method(request, warnings)
    headers = list(request.headers)
    proposal = _credentials(request, headers, url, warnings)
    body_text, body, content_type = _body(request, headers, method, warnings)
    if request.get and request.data:
        extra = "&".join(_data_text(part, warnings) or "" for part in request.data)
        query_string = "&".join(p for p in (query_string, extra) if p)
    query, kept_query, keys = _query(query_string)
    proposal = _query_key(query, keys, proposal, url, warnings)
    if kept_query:
        url = f"{url}?{kept_query}"
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    inputs: dict[str, Any] = {"url": url}
    if query:
        inputs["query"] = query
    card_headers = _header_dict(headers, warnings)
    if card_headers:
        inputs["headers"] = card_headers
    if method in JSON_METHODS and not (method == "GET" and body_text is not None):
        card_id = f"api_connector.{method.lower()}"
        if body is not None and method != "GET":
            inputs["body"] = body
    else:
        card_id = "api_connector.raw_request"
        inputs = {"url": inputs.pop("url"), "method": method, **inputs}
        if body_text is not None:
            inputs["body"] = body_text
    card: dict[str, Any] = {"card": card_id, "inputs": inputs}
    if request.max_time is not None and 0 < request.max_time <= 3600:
        card["timeout"] = request.max_time
    _check_inputs(card_id, inputs, warnings)
    return CurlImport(card, proposal, list(dict.fromkeys(warnings)))


def _url(request: CurlRequest, warnings: list[str]) -> tuple[str, str]:
    if not request.urls:
        raise InvalidInput(
            "The command has no URL: give the address to call, e.g. "
            "curl https://api.example.com/v1/users.",
            field=FIELD,
        )
    if len(request.urls) > 1:
        warnings.append(
            f"The command names {len(request.urls)} URLs (curl would call each): the card calls "
            "the first."
        )
    url = request.urls[0].strip()
    scheme, sep, _ = url.partition("://")
    if not sep:
        url = f"http://{url}"
        warnings.append("The URL has no scheme: http:// was assumed, as curl does.")
    elif scheme.lower() not in ("http", "https"):
        shown = (
            f" (this one is {scheme.lower()}://)"
            if re.fullmatch(r"[a-zA-Z+.-]{1,10}", scheme)
            else ""
        )
        raise InvalidInput(f"Only http:// and https:// URLs can be imported{shown}.", field=FIELD)
    url = _without_userinfo(request, url.partition("#")[0], warnings)  # a fragment is never sent
    variables = list(dict.fromkeys(_VARIABLE.findall(url)))
    if variables:
        warnings.append(
            f"The URL holds shell variables ({', '.join(variables)}): in the card, put what "
            "each stands for."
        )
    base, _, query_string = url.partition("?")
    return base, query_string


def _without_userinfo(request: CurlRequest, url: str, warnings: list[str]) -> str:
    """``https://user:pass@host/``: the credentials leave the URL, for the connection (as -u;
    curl takes -u over them)."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    if request.user is None:
        request.user = unquote(userinfo)
    else:
        warnings.append("The URL holds credentials too: -u is used, as curl does; left out.")
    return f"{scheme}://{host}{rest[len(authority) :]}"


def _method(request: CurlRequest, warnings: list[str]) -> str:
    if request.method is not None:
        try:
            method = check_method(request.method)
        except ValueError:
            raise InvalidInput(
                "-X/--request: that is not an HTTP method (a method is one word, like GET or "
                "POST).",
                field=FIELD,
            ) from None
        if method.upper() in JSON_METHODS and method != method.upper():
            warnings.append(f"-X {method}: the card sends {method.upper()}.")
            method = method.upper()
        return method
    if request.head:
        return "HEAD"
    if request.get:
        return "GET"
    if request.upload_file is not None:
        return "PUT"
    return "POST" if request.data or request.form else "GET"


def _credentials(
    request: CurlRequest, headers: list[tuple[str, str]], url: str, warnings: list[str]
) -> ConnectionProposal | None:
    """Takes the credentials out of the headers; the first becomes the proposal: an
    Authorization header (curl sends it instead of what -u or --oauth2-bearer make), then
    --oauth2-bearer, -u, the API-key headers."""
    found: list[tuple[str, str, str]] = []  # (kind, name, value)
    for name, value in [h for h in headers if is_credential_header(h[0])]:
        headers.remove((name, value))
        found.append(("header", name, value))
    found.sort(key=lambda item: item[1].lower() != "authorization")  # stable: typed order
    if request.bearer is not None:
        at = 1 if found and found[0][1].lower() == "authorization" else 0
        found.insert(at, ("header", "Authorization", f"Bearer {request.bearer}"))
    if request.user is not None:
        if request.auth_scheme in ("ntlm", "negotiate"):
            warnings.append(
                f"--{request.auth_scheme}: cardflow has no such auth type yet; the -u "
                "credentials were left out (not kept)."
            )
        else:
            at = sum(1 for item in found if item[1].lower() == "authorization")
            found.insert(at, ("user", "-u", request.user))
    if not found:
        return None
    kind, name, value = found[0]
    if kind == "user":
        username, sep, password = value.partition(":")
        if not sep:
            warnings.append(
                "-u gives no password (curl would ask for it): enter it in the new connection."
            )
        auth_type = "digest" if request.auth_scheme == "digest" else "basic"
        proposal = basic_proposal(url, username, password if sep else None, warnings, auth_type)
    elif name.lower() == "proxy-authorization":
        warnings.append("Proxy-Authorization: cardflow uses no proxy; left out (not kept).")
        proposal = None
    elif (basic := basic_from_header(value)) is not None and name.lower() == "authorization":
        proposal = basic_proposal(url, *basic, warnings)
    else:
        proposal = header_proposal(url, name, value, warnings)
    for _, other, _ in found[1:]:
        warnings.append(
            f"{other} is a credential too: it was left out of the card (not stored in the "
            "flow) and a connection holds one credential; add it where it belongs yourself."
        )
    return proposal


def _content_type(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-type":
            return value
    return None


def _is_json_type(value: str) -> bool:
    mime = value.partition(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _body(
    request: CurlRequest, headers: list[tuple[str, str]], method: str, warnings: list[str]
) -> tuple[str | None, Any, str | None]:
    """(the body as text, as the card's value, a Content-Type header to add)."""
    if request.upload_file is not None:
        warnings.append(
            "-T/--upload-file sends a file, which cannot be read from here: put its content in "
            "the card's body."
        )
    if request.form:
        if request.data:
            warnings.append("-F and -d together: curl refuses that; the -F fields were left out.")
        else:
            return _form(request, headers, warnings)
    if not request.data or request.get:
        return None, None, None
    texts = [_data_text(part, warnings) for part in request.data]
    present = [t for t in texts if t is not None]
    if not present:
        return None, None, None
    only_json = all(p.kind is Data.JSON for p in request.data)
    text = "".join(present) if only_json else "&".join(present)
    declared = _content_type(headers)
    added = None
    if any(p.kind is Data.JSON for p in request.data):
        if declared is None:
            added = "application/json" if method not in JSON_METHODS else None
        if not any(n.lower() == "accept" for n, _ in headers):
            headers.append(("Accept", "application/json"))
        declared = declared or "application/json"
    if declared is not None and _is_json_type(declared):
        try:
            return text, jsondata.loads(text), added
        except ValueError:
            warnings.append(
                "The body is not valid JSON (a placeholder in it?): the card keeps it as text."
            )
            return text, text, added
    if declared is None:
        try:
            value = jsondata.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict | list):
            warnings.append(
                "The body is JSON but the command gives no Content-Type (curl would send it as "
                f"{FORM}): the card sends it as application/json."
            )
            return text, value, "application/json" if method not in JSON_METHODS else None
        return text, text, FORM
    return text, text, None


def _data_text(part: DataPart, warnings: list[str]) -> str | None:
    """One -d/--data-urlencode/--json value as curl sends it; None for a file to read."""
    value = part.value
    if part.kind is Data.URLENCODE:
        # curl's forms: content, =content, name=content, @file, name@file (the first of
        # "=" and "@" decides)
        found = re.search(r"[=@]", value)
        if found is not None and found.group() == "@":
            warnings.append(
                "--data-urlencode name@file reads a file, which cannot be read from here: that "
                "part of the body was left out."
            )
            return None
        if found is None:
            return quote(value, safe="")
        name, content = value[: found.start()], value[found.end() :]
        return f"{name}={quote(content, safe='')}" if name else quote(content, safe="")
    if part.kind is not Data.RAW and value.startswith("@"):
        warnings.append(
            f"--{part.kind.value} @{value[1:] or '-'} reads the body from a file, which cannot "
            "be read from here: put its content in the card's body."
        )
        return None
    return value


def _form(
    request: CurlRequest, headers: list[tuple[str, str]], warnings: list[str]
) -> tuple[str | None, Any, str | None]:
    fields: list[tuple[str, str]] = []
    files: list[str] = []
    for part in request.form:
        if not part.literal and part.value[:1] in ("@", "<"):
            files.append(part.name)
        else:
            fields.append((part.name, part.value.split(";type=")[0]))
    headers[:] = [(n, v) for n, v in headers if n.lower() != "content-type"]
    if files:
        warnings.append(
            "-F sends files as multipart/form-data, which the API Connector cards cannot send "
            f"yet: the file field(s) {', '.join(repr(f) for f in files)} were left out."
        )
    if not fields:
        return None, None, None
    warnings.append(
        "-F sends multipart/form-data, which the API Connector cards cannot send: the text "
        f"fields go as {FORM} instead (most APIs accept either; check yours does)."
    )
    text = urlencode(fields)
    return text, text, FORM


def _query(query_string: str) -> tuple[dict[str, Any], str, list[tuple[str, str]]]:
    """(the card's query input, what stays in the URL, the parameters that look like a
    credential with their values — left empty in the card's query)."""
    pieces = [p for p in query_string.split("&") if p]
    if not pieces:
        return {}, "", []
    if any("=" not in p for p in pieces):
        return {}, query_string, []
    query: dict[str, Any] = {}
    keys: list[tuple[str, str]] = []
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if _CREDENTIAL_PARAM.match(name) and value:
            keys.append((name, value))
            value = ""
        if name in query:
            current = query[name]
            query[name] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            query[name] = value
    return query, "", keys


def _query_key(
    query: dict[str, Any],
    keys: list[tuple[str, str]],
    proposal: ConnectionProposal | None,
    url: str,
    warnings: list[str],
) -> ConnectionProposal | None:
    """A key in the query, when the command has no other credential, becomes a ``query``
    connection (and leaves the card's query); any other is left empty, with a warning."""
    if keys and proposal is None:
        name, value = keys.pop(0)
        query.pop(name, None)
        proposal = query_proposal(url, name, value, warnings)
    for name, _ in keys:
        warnings.append(
            f"The query parameter {name!r} looks like a credential: it was left empty in "
            "the card (never stored in a flow); give it its value before running the card."
        )
    return proposal


def _header_dict(headers: list[tuple[str, str]], warnings: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, value in headers:
        key = names.setdefault(name.lower(), name)
        if key in result:
            warnings.append(f"The header {name} is given twice: the card sends both values.")
            result[key] = f"{result[key]}, {value}"
        else:
            result[key] = value
    return result


def _check_inputs(card_id: str, inputs: dict[str, Any], warnings: list[str]) -> None:
    try:
        get_card(card_id).inputs.model_validate(inputs)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        warnings.append(
            f"The card needs attention before it runs: {where}: {first['msg']} (a placeholder "
            "to fill in?)."
        )
