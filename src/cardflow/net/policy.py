"""Outbound network policy: which addresses cards may connect to.

Checked on resolved addresses (so a hostname cannot smuggle a denied address) and again
for every redirect hop, before any connection is opened.
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


@dataclass(frozen=True, eq=False)  # identity hash: cheap as a cache key
class NetworkPolicy:
    deny: tuple[IPNetwork, ...]
    allow: tuple[IPNetwork, ...] = ()

    def is_allowed(self, address: IPAddress) -> bool:
        """Allowed unless inside a denied network and not inside an allowed one."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in net for net in self.deny if net.version == address.version):
            return True
        return any(address in net for net in self.allow if net.version == address.version)

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise NetworkDenied if any address ``host`` resolved to is denied."""
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.is_allowed(address):
                raise NetworkDenied(
                    f"Connecting to {host} ({address}) is not allowed by the outbound network "
                    "policy (CARDFLOW_DENY_NETWORKS / CARDFLOW_ALLOW_NETWORKS)."
                )

    def check_literal(self, host: str) -> None:
        """Check a host that is an IP literal (no DNS lookup happens for those)."""
        if _literal_denied(self, host):
            self.check(host, [host.strip("[]").split("%", 1)[0]])


@lru_cache(maxsize=1024)
def _literal_denied(policy: NetworkPolicy, host: str) -> bool:
    """True for an IP-literal host the policy refuses (cached: policies never change)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
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
