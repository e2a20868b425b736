"""Auth type ``oauth``: authorization code (with PKCE), then refreshed bearer tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.grants import RefreshTokenGrant
from cardflow.credentials.token_endpoint import ClientCredentials
from cardflow.net.urls import check_http_url

# Changing one of these invalidates the grant: the user must authorize again.
GRANT_FIELDS = ("authorize_url", "token_url", "scope", "client_id", "client_secret")


class OAuthConfig(AuthConfig):
    secret_fields = ("client_secret",)
    destination_fields = ("authorize_url", "token_url")

    authorize_url: str = Field(
        description="Provider's authorization endpoint; extra query parameters "
        "(e.g. ?prompt=consent&access_type=offline) are kept."
    )
    token_url: str = Field(description="Provider's token endpoint.")
    scope: str | None = Field(
        default=None, description="Sent exactly as typed (spaces or commas, as the service wants)."
    )
    client_id: str = Field(min_length=1)
    client_secret: str = Field(default="", description="Client secret (secret).")
    pkce: bool = Field(default=True, description="Send an S256 PKCE code challenge.")
    token_auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic",
        description="How the client authenticates at the token endpoint.",
    )
    token_response_path: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,4}$",
        description="Where the provider nests the token in its token answer, as "
        "dot-separated keys (Slack user tokens: authed_user); empty: at the top.",
    )

    @field_validator("authorize_url", "token_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return check_http_url(value)


def _build(config: OAuthConfig, setup: AuthSetup) -> BearerTokenAuth:
    refresh = RefreshTokenGrant(
        transport=setup.transport,
        token_url=config.token_url,
        client=ClientCredentials(config.client_id, config.client_secret),
        auth_method=config.token_auth_method,
        timeout=setup.timeout,
        token_path=config.token_response_path,
    )
    return BearerTokenAuth(setup.token_manager(refresh), refresh.sensitive_values())


AUTH_TYPE = AuthType(
    "oauth",
    "OAuth 2.0",
    OAuthConfig,
    _build,
    uses_tokens=True,
    user_authorizes=True,
    grant_fields=GRANT_FIELDS,
)
