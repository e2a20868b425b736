"""Pure pieces of the authorization-code flow (RFC 6749 §4.1, RFC 7636 PKCE)."""

from __future__ import annotations

import secrets

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from cardflow.credentials.token_endpoint import (
    ClientCredentials,
    TokenAuthMethod,
    TokenRequest,
    authenticate_token_request,
)

__all__ = [
    "build_authorization_url",
    "create_s256_code_challenge",
    "new_code_verifier",
    "new_state",
    "prepare_authorization_code_request",
]


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A 43-character verifier from the unreserved set (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def build_authorization_url(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str | None,
    state: str,
    code_verifier: str | None,
) -> str:
    """The provider URL to send the browser to; query parameters already in it are kept."""
    extra: dict[str, str] = {}
    if code_verifier is not None:
        extra["code_challenge"] = create_s256_code_challenge(code_verifier)
        extra["code_challenge_method"] = "S256"
    url: str = prepare_grant_uri(
        authorize_url,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope or None,  # a string goes through untouched: the separator is the user's
        state=state,
        **extra,
    )
    return url


def prepare_authorization_code_request(
    token_url: str,
    client: ClientCredentials,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    auth_method: TokenAuthMethod,
) -> TokenRequest:
    """The code-for-token exchange (RFC 6749 §4.1.3, with the PKCE verifier)."""
    params = {"code_verifier": code_verifier} if code_verifier else {}
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, **params
    )
    return authenticate_token_request(token_url, client, auth_method, body)
