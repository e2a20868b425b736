"""Auth type ``none``: nothing is added."""

from __future__ import annotations

from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType, ConnectionAuth


class NoneConfig(AuthConfig):
    pass


class NoAuth(ConnectionAuth):
    """Sends the request as it is."""

    def static_headers(self) -> dict[str, str]:
        return {}


def _build(config: NoneConfig, setup: AuthSetup) -> NoAuth:
    return NoAuth()


AUTH_TYPE = AuthType("none", "None", NoneConfig, _build)
