"""Auth type ``client_credentials``: a cached bearer token from the token endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from cardflow.credentials.base import (
    AuthConfig,
    AuthSetup,
    AuthType,
    require_client_authentication,
)
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.grants import ClientCredentialsGrant
from cardflow.credentials.token_endpoint import ClientCredentials
from cardflow.net.urls import check_http_url


class ClientCredentialsConfig(AuthConfig):
    secret_fields = ("client_secret",)
    optional_secret_fields = ("client_secret",)  # not with tls_client_auth
    destination_fields = ("token_url",)

    token_url: str = Field(description="Token endpoint URL.")
    client_id: str = Field(min_length=1)
    client_secret: str = Field(
        default="",
        description="Client secret (secret); not used with tls_client_auth.",
    )
    scope: str | None = Field(default=None, description="Sent exactly as typed.")
    token_auth_method: Literal[
        "client_secret_post",
        "client_secret_basic",
        "tls_client_auth",  # RFC 8705: the client certificate authenticates
    ] = Field(
        default="client_secret_post",
        description="client_secret_post sends the credentials in the body (default); "
        "tls_client_auth authenticates with the client certificate (RFC 8705).",
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return check_http_url(value)

    def check_before_save(self) -> None:
        require_client_authentication(self, self.token_auth_method, self.client_secret)
        super().check_before_save()


def _build(config: ClientCredentialsConfig, setup: AuthSetup) -> BearerTokenAuth:
    grant = ClientCredentialsGrant(
        transport=setup.transport,
        token_url=config.token_url,
        client=ClientCredentials(config.client_id, config.client_secret),
        scope=config.scope,
        auth_method=config.token_auth_method,
        timeout=setup.timeout,
        client_tls=setup.client_tls,
    )
    return BearerTokenAuth(setup.token_manager(grant), grant.sensitive_values())


AUTH_TYPE = AuthType(
    "client_credentials",
    "Client Credentials",
    ClientCredentialsConfig,
    _build,
    uses_tokens=True,
)
