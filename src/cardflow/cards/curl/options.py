"""curl's arguments → what the request is (:class:`CurlRequest`), option by option.

Only the options that shape the request are read; options that change nothing cardflow
does (progress, verbosity, output files, redirects, compression) are accepted quietly, and
the rest that cardflow cannot honour (a proxy, client certificates, ``-k``) are accepted
with a warning. A short option may be grouped (``-sSL``) and take its value attached
(``-XPOST``, ``-d@file``), as in curl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from cardflow.cards.curl.words import FIELD
from cardflow.errors import InvalidInput


class Data(Enum):
    """How a ``-d``-like option reads its value (curl's own distinctions)."""

    ASCII = "data"  # -d, --data, --data-ascii: @file reads a file
    BINARY = "data-binary"  # @file reads a file byte for byte
    RAW = "data-raw"  # no @ meaning
    URLENCODE = "data-urlencode"
    JSON = "json"


@dataclass
class DataPart:
    kind: Data
    value: str


@dataclass
class FormPart:
    name: str
    value: str
    literal: bool  # --form-string: no @file / <file meaning


@dataclass
class CurlRequest:
    """What the command asks for, before it is made a card."""

    urls: list[str] = field(default_factory=list)
    method: str | None = None  # -X as typed
    get: bool = False  # -G: the data go to the query
    head: bool = False  # -I
    upload_file: str | None = None  # -T
    headers: list[tuple[str, str]] = field(default_factory=list)
    removed_headers: list[str] = field(default_factory=list)  # -H 'Name:'
    data: list[DataPart] = field(default_factory=list)
    form: list[FormPart] = field(default_factory=list)
    user: str | None = None  # -u
    auth_scheme: str | None = None  # --digest, --ntlm, --negotiate, --anyauth, --basic
    bearer: str | None = None  # --oauth2-bearer
    max_time: float | None = None
    warnings: list[str] = field(default_factory=list)


# Options that take a value: long name → the short letter it has (or the long name again).
_SHORT: Final = {
    "X": "request", "H": "header", "d": "data", "F": "form", "u": "user", "A": "user-agent",
    "e": "referer", "b": "cookie", "m": "max-time", "T": "upload-file", "o": "output",
    "w": "write-out", "x": "proxy", "U": "proxy-user", "E": "cert", "c": "cookie-jar",
    "C": "continue-at", "r": "range", "y": "speed-time", "Y": "speed-limit", "z": "time-cond",
    "K": "config", "D": "dump-header", "t": "telnet-option", "Q": "quote", "P": "ftp-port",
}  # fmt: skip
_SHORT_FLAGS: Final = {
    "s": "silent", "S": "show-error", "L": "location", "v": "verbose", "k": "insecure",
    "i": "include", "I": "head", "G": "get", "f": "fail", "g": "globoff", "N": "no-buffer",
    "O": "remote-name", "J": "remote-header-name", "n": "netrc", "q": "disable",
    "#": "progress-bar", "4": "ipv4", "6": "ipv6", "0": "http1.0", "1": "tlsv1", "2": "sslv2",
    "3": "sslv3", "l": "list-only", "a": "append", "B": "use-ascii", "j": "junk-session-cookies",
    "M": "manual", "p": "proxytunnel", "R": "remote-time", "V": "version", "Z": "parallel",
    "h": "help",
}  # fmt: skip
_TAKES_VALUE: Final = {
    *_SHORT.values(),
    "url", "data-ascii", "data-binary", "data-raw", "data-urlencode", "json", "form-string",
    "oauth2-bearer", "connect-timeout", "retry", "retry-delay", "retry-max-time", "cacert",
    "capath", "key", "key-type", "cert-type", "pass", "max-redirs", "resolve", "connect-to",
    "interface", "local-port", "limit-rate", "max-filesize", "proxy-header", "preproxy",
    "noproxy", "socks5", "socks5-hostname", "socks4", "socks4a", "dns-servers", "ciphers",
    "tls-max", "aws-sigv4", "unix-socket", "abstract-unix-socket", "stderr", "trace",
    "trace-ascii", "output-dir", "create-file-mode", "expect100-timeout",
    "happy-eyeballs-timeout-ms", "keepalive-time", "request-target", "variable", "expand-url",
    "etag-save", "etag-compare",
    "parallel-max", "rate", "sasl-authzid", "service-name", "login-options", "mail-from",
    "mail-rcpt", "pinnedpubkey", "proxy-cacert", "proxy-cert", "proxy-key", "hostpubmd5",
    "hostpubsha256", "pubkey", "krb", "url-query", "proto", "proto-redir", "proto-default",
}  # fmt: skip
# Options cardflow cannot honour, with what the user should know.
_UNSUPPORTED: Final = {
    "insecure": "-k/--insecure: cardflow always verifies TLS certificates; a server with a "
    "self-signed certificate will fail until it has a trusted one.",
    "proxy": "-x/--proxy: cardflow does not send card requests through a proxy; ignored.",
    "proxy-user": "-U/--proxy-user: cardflow does not use a proxy; ignored (not kept).",
    "cert": "-E/--cert: client certificates are not read from a curl command; ignored.",
    "key": "--key: client certificates are not read from a curl command; ignored.",
    "cacert": "--cacert: cardflow uses the system's trusted certificates; ignored.",
    "capath": "--capath: cardflow uses the system's trusted certificates; ignored.",
    "resolve": "--resolve: cardflow resolves host names itself; ignored.",
    "connect-to": "--connect-to: cardflow connects to the URL's host; ignored.",
    "unix-socket": "--unix-socket: cardflow calls hosts over TCP; ignored.",
    "aws-sigv4": "--aws-sigv4: AWS Signature v4 is not an auth type yet; the request is "
    "not signed.",
    "cookie-jar": "-c/--cookie-jar: cards keep no cookies between requests; ignored.",
    "config": "-K/--config: a config file cannot be read from here; its options are missing.",
    "retry": "--retry: set the card's retry policy instead (429 and 503 are retried); ignored.",
    "range": "-r/--range: add a Range header to the card instead; ignored.",
    "request-target": "--request-target: not supported; the URL's path is sent.",
    "variable": "--variable: curl variables are not expanded; {{name}} stays as typed.",
    "expand-url": "--expand-url: curl variables are not expanded; the URL is used as typed.",
    "url-query": "--url-query: not read; add the parameter to the card's query.",
}
_AUTH_SCHEMES: Final = {"basic", "digest", "ntlm", "negotiate", "anyauth"}
_DATA_OPTIONS: Final = {
    "data": Data.ASCII, "data-ascii": Data.ASCII, "data-binary": Data.BINARY,
    "data-raw": Data.RAW, "data-urlencode": Data.URLENCODE, "json": Data.JSON,
}  # fmt: skip


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, field=FIELD)


def read_options(args: list[str]) -> CurlRequest:
    """curl's arguments as a :class:`CurlRequest`, or InvalidInput (field ``command``)."""
    request = CurlRequest()
    index = 0
    only_urls = False  # after "--"
    while index < len(args):
        arg = args[index]
        index += 1
        if only_urls or not arg.startswith("-") or arg == "-":
            request.urls.append(arg)
            continue
        if arg == "--":
            only_urls = True
            continue
        if arg.startswith("--"):
            name, eq, attached = arg[2:].partition("=")
            name = name.lower()
            if name in _TAKES_VALUE:
                if eq:
                    value = attached
                elif index < len(args):
                    value = args[index]
                    index += 1
                else:
                    raise _bad(f"--{name} needs a value after it.")
                _apply(request, name, value)
            else:
                _flag(request, name, f"--{name}")
            continue
        # short options, grouped: -sSL, -XPOST, -sd '{...}'
        position = 1
        while position < len(arg):
            letter = arg[position]
            position += 1
            if letter in _SHORT:
                name = _SHORT[letter]
                if position < len(arg):
                    value = arg[position:]
                elif index < len(args):
                    value = args[index]
                    index += 1
                else:
                    raise _bad(f"-{letter} ({'--' + name}) needs a value after it.")
                _apply(request, name, value)
                break
            if letter in _SHORT_FLAGS:
                _flag(request, _SHORT_FLAGS[letter], f"-{letter}")
            else:
                request.warnings.append(f"Unknown option -{letter}: ignored.")
    return request


def _flag(request: CurlRequest, name: str, shown: str) -> None:
    if name == "get":
        request.get = True
    elif name == "head":
        request.head = True
    elif name in _AUTH_SCHEMES:
        request.auth_scheme = name
    elif name in _UNSUPPORTED:
        request.warnings.append(_UNSUPPORTED[name])
    elif name in ("version", "help", "manual"):
        raise _bad(f"{shown} asks curl about itself: there is no request to import.")
    elif name in _KNOWN_FLAGS or name.startswith(("no-", "http", "tls", "ssl", "proxy-")):
        pass  # changes nothing a card does, or nothing that can be kept
    else:
        request.warnings.append(f"Unknown option {shown}: ignored.")


_KNOWN_FLAGS: Final = {
    *_SHORT_FLAGS.values(), "compressed", "compressed-ssh", "location-trusted", "path-as-is",
    "fail-with-body", "fail-early", "show-headers", "styled-output", "raw", "tcp-nodelay",
    "tcp-fastopen", "disable-eprt", "disable-epsv", "ftp-pasv", "globoff", "remote-name-all",
    "create-dirs", "xattr", "post301", "post302", "post303", "suppress-connect-headers",
    "ignore-content-length", "keepalive", "sessionid", "alpn", "npn", "buffer", "progress-meter",
    "retry-connrefused", "retry-all-errors", "clobber", "skip-existing", "ca-native",
    "doh-insecure", "false-start", "cert-status", "crlf", "digest-ie", "metalink", "trace-time",
    "location", "url-query", "parallel-immediate", "no-alpn",
}  # fmt: skip


def _apply(request: CurlRequest, name: str, value: str) -> None:
    if name == "url":
        request.urls.append(value)
    elif name == "request":
        request.method = value
    elif name == "header":
        _header(request, value)
    elif name in _DATA_OPTIONS:
        request.data.append(DataPart(_DATA_OPTIONS[name], value))
    elif name in ("form", "form-string"):
        form_name, sep, form_value = value.partition("=")
        if not sep:
            raise _bad(f"-F/--{name} takes name=content (one had no '=').")
        request.form.append(FormPart(form_name, form_value, literal=name == "form-string"))
    elif name == "user":
        request.user = value
    elif name == "oauth2-bearer":
        request.bearer = value
    elif name == "user-agent":
        request.headers.append(("User-Agent", value))
    elif name == "referer":
        request.headers.append(("Referer", value.removesuffix(";auto")))
    elif name == "cookie":
        if "=" in value:
            request.headers.append(("Cookie", value))
        else:
            request.warnings.append(
                "-b/--cookie names a cookie file, which cannot be read from here; ignored."
            )
    elif name == "upload-file":
        request.upload_file = value
    elif name == "max-time":
        try:
            request.max_time = float(value)
        except ValueError:
            raise _bad("-m/--max-time takes a number of seconds.") from None
    elif name in _UNSUPPORTED:
        request.warnings.append(_UNSUPPORTED[name])
    # Any other option with a value changes nothing a card does (output files, timeouts
    # of a connection, rates, ...).


def _header(request: CurlRequest, value: str) -> None:
    if value.startswith("@"):
        request.warnings.append(
            "-H @file reads headers from a file, which cannot be read from here; ignored."
        )
        return
    name, sep, rest = value.partition(":")
    name = name.strip()
    if not sep:
        if name.endswith(";"):  # "Name;": the header with an empty value
            request.headers.append((name[:-1].strip(), ""))
            return
        raise _bad("-H/--header takes 'Name: value' (one had no ':').")
    if not name:
        raise _bad("-H/--header takes 'Name: value' (one had no name before ':').")
    if not rest.strip():  # "Name:": curl leaves out a header it would have sent itself
        request.removed_headers.append(name)
        request.headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
        return
    request.headers.append((name, rest.strip()))
