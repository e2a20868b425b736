"""Auth type ``client_credentials``: a cached bearer token from the token endpoint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cardflow.credentials import client_auth
from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.grants import ClientCredentialsGrant
from cardflow.net.urls import check_http_url


class ClientCredentialsConfig(AuthConfig):
    secret_fields = ("client_secret", "private_key")
    destination_fields = ("token_url", "revocation_url")
    applies_when = client_auth.APPLIES_WHEN
    required_when = client_auth.REQUIRED_WHEN
    pem_fields = ("private_key",)
    derived_fields = ("public_jwk",)

    token_url: str = Field(description="Token endpoint URL.")
    client_id: str = Field(min_length=1)
    client_secret: str = Field(
        default="",
        description="Client secret (secret): client_secret_basic and client_secret_post only.",
    )
    scope: str | None = Field(default=None, description="Sent exactly as typed.")
    token_auth_method: Literal[
        "client_secret_post",
        "client_secret_basic",
        "private_key_jwt",  # RFC 7523 §2.2: a JWT signed with private_key
        "tls_client_auth",  # RFC 8705: the client certificate authenticates
    ] = Field(
        default="client_secret_post",
        description="client_secret_post sends the credentials in the body (default); "
        "private_key_jwt a JWT signed with private_key; tls_client_auth authenticates "
        "with the client certificate (RFC 8705).",
    )
    private_key: str = Field(default="", description=client_auth.PRIVATE_KEY_DESCRIPTION)
    key_id: str | None = Field(default=None, description=client_auth.KEY_ID_DESCRIPTION)
    revocation_url: str | None = Field(
        default=None, description=client_auth.REVOCATION_URL_DESCRIPTION
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return check_http_url(value)

    _revocation_url = field_validator("revocation_url")(client_auth.check_optional_url)
    _private_key = field_validator("private_key")(client_auth.check_private_key)
    _key_id = field_validator("key_id")(client_auth.check_kid)

    def derived(self) -> dict[str, Any]:
        return client_auth.public_jwk(self)


def _build(config: ClientCredentialsConfig, setup: AuthSetup) -> BearerTokenAuth:
    grant = ClientCredentialsGrant(
        transport=setup.transport,
        token_url=config.token_url,
        client=client_auth.client_of(config),
        scope=config.scope,
        auth_method=config.token_auth_method,
        timeout=setup.timeout,
        client_tls=setup.client_tls,
    )
    static = grant.sensitive_values() + client_auth.private_key_values(config)
    return BearerTokenAuth(setup.token_manager(grant), static)


AUTH_TYPE = AuthType(
    "client_credentials",
    "Client Credentials",
    ClientCredentialsConfig,
    _build,
    uses_tokens=True,
)
