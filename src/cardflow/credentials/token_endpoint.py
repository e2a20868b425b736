"""Pure OAuth 2.0 token-endpoint pieces (RFC 6749 §4.4, §5, §6): build requests, read answers;
client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2) and revocation requests (RFC 7009)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from authlib.common.urls import add_params_to_qs
from authlib.oauth2.auth import encode_client_secret_basic, encode_client_secret_post
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7009 import prepare_revoke_token_request
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE

from cardflow.credentials.client_assertion import SigningKey, sign_client_assertion

# How a client authenticates at the token endpoint (one value per method).
TokenAuthMethod = Literal[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",  # RFC 7523 §2.2: a JWT signed with the client's private key
    "tls_client_auth",  # RFC 8705 §2.1: the client certificate presented authenticates
]


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    signing_key: SigningKey | None = None  # for private_key_jwt


# Token request parameters that are secrets (RFC 6749, RFC 7636, RFC 7523).
SECRET_PARAMETERS = frozenset(
    {"client_secret", "refresh_token", "code", "code_verifier", "password", "client_assertion"}
)


@dataclass(frozen=True)
class TokenRequest:
    url: str
    headers: dict[str, str]
    body: str

    def sensitive_values(self) -> list[str]:
        """What this request carries that must never be shown: secret parameters and the
        client's Basic credentials (whole header value and the encoded part)."""
        values = [value for name, value in parse_qsl(self.body) if name in SECRET_PARAMETERS]
        for name, value in self.headers.items():
            if name.lower() == "authorization":
                scheme, _, credentials = value.partition(" ")
                values.extend((value, credentials))
                if scheme.lower() == "basic":
                    # the client secret itself, which an endpoint may echo decoded
                    # (Authlib writes Basic credentials as latin-1)
                    with contextlib.suppress(binascii.Error, ValueError):
                        pair = base64.b64decode(credentials, validate=True).decode("latin-1")
                        values.append(pair.partition(":")[2])
        return values


def prepare_client_credentials_request(
    token_url: str,
    client: ClientCredentials,
    *,
    scope: str | None,
    auth_method: TokenAuthMethod,
) -> TokenRequest:
    """The client-credentials token request (RFC 6749 §4.4.2), scope sent as typed."""
    params: dict[str, Any] = {"scope": scope} if scope else {}
    return authenticate_token_request(
        token_url, client, auth_method, prepare_token_request("client_credentials", **params)
    )


def prepare_refresh_request(
    token_url: str,
    client: ClientCredentials,
    *,
    refresh_token: str,
    auth_method: TokenAuthMethod,
) -> TokenRequest:
    """The refresh-token request (RFC 6749 §6)."""
    body = prepare_token_request("refresh_token", refresh_token=refresh_token)
    return authenticate_token_request(token_url, client, auth_method, body)


def prepare_revocation_request(
    revocation_url: str,
    client: ClientCredentials,
    *,
    token: str,
    token_type_hint: Literal["access_token", "refresh_token"],
    auth_method: TokenAuthMethod,
) -> TokenRequest:
    """A token revocation request (RFC 7009 §2.1), authenticated as at the token endpoint."""
    body, _ = prepare_revoke_token_request(token, token_type_hint)
    return authenticate_token_request(revocation_url, client, auth_method, body)


def authenticate_token_request(
    token_url: str, client: ClientCredentials, auth_method: TokenAuthMethod, body: str
) -> TokenRequest:
    """Add client authentication (RFC 6749 §2.3.1): a Basic header, or the body; for
    private_key_jwt a fresh assertion for this URL in the body (RFC 7523 §2.2); with
    ``tls_client_auth`` (RFC 8705 §2.1) only ``client_id`` in the body, the certificate
    presented on the connection authenticating the client."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    if auth_method == "private_key_jwt":
        if client.signing_key is None:
            raise ValueError("private_key_jwt needs the client's private key")
        assertion = sign_client_assertion(
            client.signing_key, client_id=client.client_id, audience=token_url
        )
        params = [
            ("client_id", client.client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ]
        return TokenRequest(token_url, headers, add_params_to_qs(body, params))
    if auth_method == "tls_client_auth":
        return TokenRequest(
            token_url, headers, add_params_to_qs(body, {"client_id": client.client_id})
        )
    encode = (
        encode_client_secret_basic
        if auth_method == "client_secret_basic"
        else encode_client_secret_post
    )
    url, headers, body = encode(client, "POST", token_url, headers, body)
    return TokenRequest(url, headers, body)


@dataclass(frozen=True)
class TokenResponse:
    """A successful token answer, with the absolute expiry worked out."""

    access_token: str
    token_type: str
    expires_at: float | None
    refresh_token: str | None
    scope: str | None
    obtained_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "obtained_at": self.obtained_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenResponse:
        return cls(
            access_token=data["access_token"],
            token_type=data.get("token_type") or "Bearer",
            expires_at=data.get("expires_at"),
            refresh_token=data.get("refresh_token"),
            scope=data.get("scope"),
            obtained_at=data.get("obtained_at") or time.time(),
        )


class TokenEndpointError(Exception):
    """The token endpoint answered with an OAuth error (RFC 6749 §5.2)."""

    def __init__(self, status: int, error: str, description: str | None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.status = status
        self.error = error
        self.description = description


class MalformedTokenResponse(Exception):
    pass


def parse_token_response(
    status: int,
    content_type: str,
    body: bytes,
    *,
    now: float | None = None,
    token_path: str | None = None,
) -> TokenResponse:
    """Read a token endpoint answer; raise TokenEndpointError or MalformedTokenResponse.

    ``token_path``: where the token sits when a provider nests it (dot-separated keys;
    Slack's user tokens: ``authed_user``). Errors are read at the top, as sent."""
    now = time.time() if now is None else now
    data = _decode(content_type, body)
    if status >= 400 or "error" in data:
        error = str(data.get("error") or f"http_{status}")
        description = data.get("error_description")
        raise TokenEndpointError(status, error, str(description) if description else None)
    if token_path:
        data = nested_token(data, token_path)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise MalformedTokenResponse("the token response has no access_token")
    expires_in = data.get("expires_in")
    expires_at: float | None = None
    if expires_in is not None:
        try:
            expires_at = now + float(expires_in)
        except (TypeError, ValueError):
            raise MalformedTokenResponse("expires_in is not a number") from None
    refresh = data.get("refresh_token")
    scope = data.get("scope")
    return TokenResponse(
        access_token=token,
        token_type=str(data.get("token_type") or "Bearer"),
        expires_at=expires_at,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
        obtained_at=now,
    )


def nested_token(data: dict[str, Any], token_path: str) -> dict[str, Any]:
    """The object at ``token_path`` (``a.b``) in a token answer, or MalformedTokenResponse."""
    for key in token_path.split("."):
        inner = data.get(key)
        if not isinstance(inner, dict):
            raise MalformedTokenResponse(
                f"the token response has no {key!r} object (token_response_path {token_path!r})"
            )
        data = inner
    return data


def _decode(content_type: str, body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", errors="replace")
    if "application/x-www-form-urlencoded" in content_type or "text/plain" in content_type:
        pairs = dict(parse_qsl(text))
        if pairs:
            return pairs
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise MalformedTokenResponse("the token response is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedTokenResponse("the token response is not a JSON object")
    return data
