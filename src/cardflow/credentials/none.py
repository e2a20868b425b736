"""Auth type ``none``: nothing is added."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType, ConnectionAuth


class NoneConfig(AuthConfig):
    pass


_NOTHING: Mapping[str, str] = MappingProxyType({})


class NoAuth(ConnectionAuth):
    """Sends the request as it is."""

    def ready_headers(self) -> Mapping[str, str]:
        return _NOTHING


def _build(config: NoneConfig, setup: AuthSetup) -> NoAuth:
    return NoAuth()


AUTH_TYPE = AuthType("none", "None", NoneConfig, _build)
