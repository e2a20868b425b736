"""Auth type ``client_credentials``: a cached bearer token from the token endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.grants import ClientCredentialsGrant
from cardflow.credentials.token_endpoint import ClientCredentials
from cardflow.net.urls import check_http_url


class ClientCredentialsConfig(AuthConfig):
    secret_fields = ("client_secret",)
    destination_fields = ("token_url",)

    token_url: str = Field(description="Token endpoint URL.")
    client_id: str = Field(min_length=1)
    client_secret: str = Field(default="", description="Client secret (secret).")
    scope: str | None = Field(default=None, description="Sent exactly as typed.")
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = Field(
        default="client_secret_post",
        description="client_secret_post sends the credentials in the body (default).",
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return check_http_url(value)


def _build(config: ClientCredentialsConfig, setup: AuthSetup) -> BearerTokenAuth:
    grant = ClientCredentialsGrant(
        transport=setup.transport,
        token_url=config.token_url,
        client=ClientCredentials(config.client_id, config.client_secret),
        scope=config.scope,
        auth_method=config.token_auth_method,
        timeout=setup.timeout,
    )
    return BearerTokenAuth(setup.token_manager(grant), grant.sensitive_values())


AUTH_TYPE = AuthType(
    "client_credentials",
    "Client Credentials",
    ClientCredentialsConfig,
    _build,
    uses_tokens=True,
)
