"""Connections bound to hosts: where a connection's credentials may be sent.

A connection's ``allowed_hosts`` lists exact hosts (``api.example.com``, ``127.0.0.1``,
``[::1]``) and subdomain patterns (``*.example.com``: any name under example.com, not
example.com itself), each optionally with a port (``api.example.com:8443``; without one,
any port). An empty list means any host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from yarl import URL

from cardflow.errors import HostNotAllowed

MAX_ALLOWED_HOSTS = 100


@dataclass(frozen=True)
class HostPattern:
    host: str  # lower-case, IDNA-encoded; for a wildcard, the domain after "*."
    wildcard: bool
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"*.{host}" if self.wildcard else host
        return f"{text}:{self.port}" if self.port is not None else text

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:  # a name under the domain, never an IP address
            return host.endswith("." + self.host) and not host.rpartition(".")[2].isdigit()
        return host == self.host

    def covers(self, other: HostPattern) -> bool:
        """Every host:port ``other`` allows, this allows too."""
        if self.port is not None and other.port != self.port:
            return False
        if not self.wildcard:
            return not other.wildcard and other.host == self.host
        return other.host.endswith("." + self.host) or (other.wildcard and other.host == self.host)


@lru_cache(maxsize=1024)
def parse_host_pattern(text: str) -> HostPattern:
    """Parse one entry of ``allowed_hosts``, or raise ValueError saying what is wrong."""
    entry = text.strip() if isinstance(text, str) else ""
    if not entry:
        raise ValueError("an empty entry is not a host")
    if "://" in entry or any(ch in entry for ch in "/?#@ \t\r\n"):
        raise ValueError(f"{text!r} is not a host: give only the host (and maybe :port)")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in entry):
        # URL parsing would silently drop them, turning the entry into another host
        raise ValueError(f"{text!r} is not a host: it contains control characters")
    wildcard = entry.startswith("*.")
    rest = entry[2:] if wildcard else entry
    if "*" in rest:
        raise ValueError(f"{text!r}: a wildcard may only be a whole first label (*.example.com)")
    if rest.count(":") > 1 and not rest.startswith("["):
        rest = f"[{rest}]"  # a bare IPv6 address
    try:
        url = URL(f"http://{rest}/")
        host = url.raw_host
        port = url.explicit_port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a host ({exc})") from None
    if not host:
        raise ValueError(f"{text!r} is not a host")
    host = host.lower().rstrip(".")
    if wildcard and ("." not in host or ":" in host):
        raise ValueError(f"{text!r}: a wildcard needs a domain with a dot (*.example.com)")
    if wildcard and host.rpartition(".")[2].isdigit():
        # "*.0.0.1" would match IP addresses by their ending
        raise ValueError(f"{text!r}: a wildcard needs a domain name, not an IP address")
    return HostPattern(host, wildcard, port)


def normalize_allowed_hosts(entries: object) -> list[str]:
    """Validate ``allowed_hosts`` and write each entry in one canonical form."""
    if entries is None:
        return []
    if not isinstance(entries, list | tuple):
        raise ValueError("must be a list of hosts, e.g. ['api.example.com', '*.example.com']")
    if len(entries) > MAX_ALLOWED_HOSTS:
        raise ValueError(f"at most {MAX_ALLOWED_HOSTS} entries")
    patterns: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError("every entry must be text")
        text = str(parse_host_pattern(entry))
        if text not in patterns:
            patterns.append(text)
    return patterns


def widened(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Entries of ``after`` that allow a host ``before`` did not (``["*"]`` when ``after``
    is empty — any host — and ``before`` was not)."""
    if not after:
        return ["*"] if before else []
    if not before:
        return []  # any host before: nothing can be wider
    old = [parse_host_pattern(entry) for entry in before]
    return [
        entry
        for entry in after
        if not any(pattern.covers(parse_host_pattern(entry)) for pattern in old)
    ]


class AllowedHosts:
    """The hosts one connection's credentials may go to (checked before every request)."""

    __slots__ = ("_checked", "_connection", "entries", "patterns")

    def __init__(self, entries: Iterable[str], connection: str) -> None:
        self.entries = tuple(entries)
        self.patterns = tuple(parse_host_pattern(entry) for entry in self.entries)
        self._connection = connection
        self._checked: dict[tuple[str, int | None], bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def allows(self, url: URL) -> bool:
        host = (url.raw_host or "").lower().rstrip(".")
        key = (host, url.port)
        known = self._checked.get(key)
        if known is None:
            known = any(pattern.matches(host, url.port) for pattern in self.patterns)
            if len(self._checked) < 256:
                self._checked[key] = known
        return known

    def check(self, url: URL) -> None:
        """Raise HostNotAllowed unless the connection may send its credentials to ``url``."""
        if self.patterns and not self.allows(url):
            raise HostNotAllowed(
                f"Connection {self._connection!r} may only be used with "
                f"{', '.join(self.entries)}; {url.host}"
                f"{'' if url.explicit_port is None else f':{url.port}'} is not among its "
                "allowed_hosts. Nothing was sent. Add the host to the connection's "
                "allowed_hosts (re-entering its secrets) or use another connection.",
                field="inputs.url",
            )
