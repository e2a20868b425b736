"""What the two OAuth grants' configs share about client authentication and revocation:
which secret each ``token_auth_method`` needs (the client secret, the private key, or the
client certificate and key every auth type may carry), the private key's checks, and the public
JWK shown for registration."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Protocol

from cardflow.credentials.client_assertion import (
    SigningKey,
    check_key_id,
    load_signing_key,
    normalize_pem,
    pem_values,
)
from cardflow.credentials.token_endpoint import ClientCredentials, TokenAuthMethod
from cardflow.net.urls import check_http_url

# The methods that send the client secret (any other needs none).
CLIENT_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
PRIVATE_KEY_METHODS = frozenset({"private_key_jwt"})
# The method the client certificate authenticates with (RFC 8705 §2.1).
TLS_CLIENT_AUTH_METHODS = frozenset({"tls_client_auth"})

# AuthConfig.applies_when for both configs.
APPLIES_WHEN = MappingProxyType(
    {
        "client_secret": ("token_auth_method", CLIENT_SECRET_METHODS),
        "private_key": ("token_auth_method", PRIVATE_KEY_METHODS),
        "key_id": ("token_auth_method", PRIVATE_KEY_METHODS),
    }
)
# AuthConfig.required_when for both configs: the mutual-TLS fields every type has (and may
# leave empty) are needed when the certificate authenticates the client.
REQUIRED_WHEN = MappingProxyType(
    {
        "client_certificate": ("token_auth_method", TLS_CLIENT_AUTH_METHODS),
        "client_key": ("token_auth_method", TLS_CLIENT_AUTH_METHODS),
    }
)

PRIVATE_KEY_DESCRIPTION = (
    "private_key_jwt: the client's private key, PEM (RSA, 2048 bits or more: RS256; "
    "EC P-256: ES256). Register the public JWK cardflow shows with the provider."
)
KEY_ID_DESCRIPTION = (
    "private_key_jwt: the kid the provider knows the key by; empty: the key's RFC 7638 thumbprint."
)
REVOCATION_URL_DESCRIPTION = (
    "RFC 7009 revocation endpoint (optional): the tokens held are revoked there when the "
    "connection is deleted or authorized again."
)


class ClientAuthConfig(Protocol):
    """The fields both OAuth configs have."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...
    @property
    def private_key(self) -> str: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def token_auth_method(self) -> TokenAuthMethod: ...


def check_private_key(value: str) -> str:
    """Field validator: an empty key, or a PEM key cardflow can sign with (kept cleaned)."""
    if not value:
        return value
    load_signing_key(value)  # ValueError says what is wrong, never showing the key
    return normalize_pem(value)


def check_optional_url(value: str | None) -> str | None:
    return check_http_url(value) if value else None


def check_kid(value: str | None) -> str | None:
    return check_key_id(value)


def signing_key(config: ClientAuthConfig) -> SigningKey | None:
    """The key that signs the client's assertions (private_key_jwt only)."""
    if config.token_auth_method not in PRIVATE_KEY_METHODS or not config.private_key:
        return None
    return load_signing_key(config.private_key, config.key_id)


def client_of(config: ClientAuthConfig) -> ClientCredentials:
    """The client as its token endpoint authenticates it."""
    method = config.token_auth_method
    return ClientCredentials(
        config.client_id,
        config.client_secret if method in CLIENT_SECRET_METHODS else "",
        signing_key(config),
    )


def public_jwk(config: ClientAuthConfig) -> dict[str, Any]:
    """The derived ``public_jwk`` field: the JWK to register, or None (JSON null)."""
    key = signing_key(config)
    return {"public_jwk": key.public_jwk() if key else None}


def private_key_values(config: ClientAuthConfig) -> list[str]:
    """The private key in each form it might leak in (never on the wire, but redacted)."""
    return pem_values(config.private_key) if config.private_key else []
