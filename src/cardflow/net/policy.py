"""Outbound network policy: which addresses cards may connect to.

Checked on resolved addresses (so a hostname cannot smuggle a denied address) and again
for every redirect hop, before any connection is opened. An address is checked in every
form that can reach the same place: an IPv6 address embedding an IPv4 one (IPv4-mapped,
IPv4-compatible, NAT64, 6to4, Teredo) is checked as that IPv4 address too, and an
unspecified address (``0.0.0.0``, ``::``), which the kernel connects to this host, is
checked as loopback as well.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from cardflow.errors import NetworkDenied
from cardflow.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_THIS_HOST_V4 = ipaddress.IPv4Network("0.0.0.0/8")
_LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def reachable_forms(address: IPAddress) -> tuple[IPAddress, ...]:
    """The address and every other address a connection to it may really reach."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = None
        if address.ipv4_mapped is not None:
            embedded = address.ipv4_mapped
        elif address.sixtofour is not None:
            embedded = address.sixtofour
        elif address.teredo is not None:
            embedded = address.teredo[1]
        elif any(address in net for net in _NAT64) or (
            address in _IPV4_COMPATIBLE and int(address) > 1
        ):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            forms.extend(reachable_forms(embedded))
        elif address.is_unspecified:
            forms.extend(_LOOPBACK)
    elif address in _THIS_HOST_V4:
        forms.extend(_LOOPBACK)
    return tuple(dict.fromkeys(forms))


def parse_address(text: str) -> IPAddress:
    """An IP address from a host or resolver answer (brackets and zone id dropped)."""
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


@dataclass(frozen=True, eq=False)  # identity hash: cheap as a cache key
class NetworkPolicy:
    deny: tuple[IPNetwork, ...]
    allow: tuple[IPNetwork, ...] = ()

    def is_allowed(self, address: IPAddress) -> bool:
        """Allowed unless one of its forms is inside a denied network and not inside an
        allowed one."""
        return all(self._allows(form) for form in reachable_forms(address))

    def _allows(self, address: IPAddress) -> bool:
        if not any(address in net for net in self.deny if net.version == address.version):
            return True
        return any(address in net for net in self.allow if net.version == address.version)

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise NetworkDenied if any address ``host`` resolved to is denied."""
        for text in addresses:
            address = parse_address(text)
            if not self.is_allowed(address):
                raise NetworkDenied(
                    f"Connecting to {host} ({address}) is not allowed by the outbound network "
                    "policy (CARDFLOW_DENY_NETWORKS / CARDFLOW_ALLOW_NETWORKS)."
                )

    def check_literal(self, host: str) -> None:
        """Check a host that is an IP literal (no DNS lookup happens for those)."""
        if _literal_denied(self, host):
            self.check(host, [host])


@lru_cache(maxsize=1024)
def _literal_denied(policy: NetworkPolicy, host: str) -> bool:
    """True for an IP-literal host the policy refuses (cached: policies never change)."""
    try:
        address = parse_address(host)
    except ValueError:
        return False  # a name: checked after DNS resolution
    return not policy.is_allowed(address)


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that refuses a host when any of its addresses is denied."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._policy.check(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        await self._inner.close()
