"""The auth types a connection can have, by ``auth_type``."""

from __future__ import annotations

from dataclasses import dataclass

from cardflow.auth.base import AuthConfig
from cardflow.auth.basic import BasicConfig
from cardflow.auth.client_credentials import ClientCredentialsConfig
from cardflow.auth.custom import CustomHeaderConfig
from cardflow.auth.none import NoneConfig
from cardflow.auth.oauth import OAuthConfig


@dataclass(frozen=True)
class AuthType:
    name: str
    title: str
    config: type[AuthConfig]
    uses_tokens: bool = False


AUTH_TYPES: dict[str, AuthType] = {
    t.name: t
    for t in (
        AuthType("basic", "Basic", BasicConfig),
        AuthType("custom", "Custom Header", CustomHeaderConfig),
        AuthType("oauth", "OAuth 2.0", OAuthConfig, True),
        AuthType("client_credentials", "Client Credentials", ClientCredentialsConfig, True),
        AuthType("none", "None", NoneConfig),
    )
}
