"""Auth type ``oauth``: authorization code (with PKCE), then refreshed bearer tokens."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cardflow.credentials import client_auth
from cardflow.credentials.base import AuthConfig, AuthSetup, AuthType
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.grants import RefreshTokenGrant
from cardflow.net.urls import check_http_url

# Changing one of these invalidates the grant: the user must authorize again.
GRANT_FIELDS = ("authorize_url", "token_url", "scope", "client_id", "client_secret")


class OAuthConfig(AuthConfig):
    secret_fields = ("client_secret", "private_key")
    destination_fields = ("authorize_url", "token_url", "revocation_url")
    applies_when = client_auth.APPLIES_WHEN
    required_when = client_auth.REQUIRED_WHEN
    pem_fields = ("private_key",)
    derived_fields = ("public_jwk",)

    authorize_url: str = Field(
        description="Provider's authorization endpoint; extra query parameters "
        "(e.g. ?prompt=consent&access_type=offline) are kept."
    )
    token_url: str = Field(description="Provider's token endpoint.")
    scope: str | None = Field(
        default=None, description="Sent exactly as typed (spaces or commas, as the service wants)."
    )
    client_id: str = Field(min_length=1)
    client_secret: str = Field(
        default="",
        description="Client secret (secret): client_secret_basic and client_secret_post only.",
    )
    pkce: bool = Field(default=True, description="Send an S256 PKCE code challenge.")
    token_auth_method: Literal[
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",  # RFC 7523 §2.2: a JWT signed with private_key
        "tls_client_auth",  # RFC 8705: the client certificate authenticates
    ] = Field(
        default="client_secret_basic",
        description="How the client authenticates at the token endpoint: with client_secret "
        "(client_secret_basic, client_secret_post), a JWT signed with private_key "
        "(private_key_jwt, RFC 7523) or the client certificate (tls_client_auth, RFC 8705).",
    )
    private_key: str = Field(default="", description=client_auth.PRIVATE_KEY_DESCRIPTION)
    key_id: str | None = Field(default=None, description=client_auth.KEY_ID_DESCRIPTION)
    revocation_url: str | None = Field(
        default=None, description=client_auth.REVOCATION_URL_DESCRIPTION
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

    _revocation_url = field_validator("revocation_url")(client_auth.check_optional_url)
    _private_key = field_validator("private_key")(client_auth.check_private_key)
    _key_id = field_validator("key_id")(client_auth.check_kid)

    def derived(self) -> dict[str, Any]:
        return client_auth.public_jwk(self)


def _build(config: OAuthConfig, setup: AuthSetup) -> BearerTokenAuth:
    refresh = RefreshTokenGrant(
        transport=setup.transport,
        token_url=config.token_url,
        client=client_auth.client_of(config),
        auth_method=config.token_auth_method,
        timeout=setup.timeout,
        client_tls=setup.client_tls,
        token_path=config.token_response_path,
    )
    static = refresh.sensitive_values() + client_auth.private_key_values(config)
    return BearerTokenAuth(setup.token_manager(refresh), static)


AUTH_TYPE = AuthType(
    "oauth",
    "OAuth 2.0",
    OAuthConfig,
    _build,
    uses_tokens=True,
    user_authorizes=True,
    grant_fields=GRANT_FIELDS,
)
