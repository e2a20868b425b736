"""Token grants: how a connection gets a new token from its token endpoint."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, replace

from multidict import CIMultiDict
from yarl import URL

from cardflow.credentials.token_endpoint import (
    ClientCredentials,
    MalformedTokenResponse,
    TokenAuthMethod,
    TokenEndpointError,
    TokenRequest,
    TokenResponse,
    parse_token_response,
    prepare_client_credentials_request,
    prepare_refresh_request,
)
from cardflow.errors import (
    CardFailed,
    NeedsAuthorization,
    NetworkDenied,
    TokenRejected,
    TokenRequestFailed,
)
from cardflow.net import client
from cardflow.net.tls import ClientTls
from cardflow.net.transport import HttpTransport, InboundResponse, OutboundRequest, safe_url
from cardflow.net.urls import parse_http_url
from cardflow.redaction import LOG_SECRETS, SecretSet

TOKEN_RESPONSE_LIMIT = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class _TokenEndpoint:
    """What every grant needs to talk to a token endpoint."""

    transport: HttpTransport
    token_url: str
    client: ClientCredentials
    auth_method: TokenAuthMethod
    timeout: float
    # The connection's client certificate (presented at the token endpoint: tls_client_auth
    # needs it) and CA bundle.
    client_tls: ClientTls | None = None
    # Where the provider nests the token in its answer (OAuthConfig.token_response_path).
    token_path: str | None = None

    def sensitive_values(self) -> list[str]:
        """The client secret, and the Basic credentials it makes at the token endpoint."""
        return client_secret_values(self.client)


def client_secret_values(client: ClientCredentials) -> list[str]:
    """A client secret as it goes to a token endpoint: raw, and inside Basic credentials."""
    if not client.client_secret:
        return []
    values = [client.client_secret]
    pair = f"{client.client_id}:{client.client_secret}"
    for encoding in ("utf-8", "latin-1"):  # Authlib writes Basic credentials as latin-1
        with contextlib.suppress(UnicodeEncodeError):
            values.append(base64.b64encode(pair.encode(encoding)).decode("ascii"))
    return values


def _safe_location(response: InboundResponse) -> str:
    """Where a redirect points, without its query (it might carry anything)."""
    try:
        return safe_url(response.url.join(URL(response.headers["Location"])))
    except ValueError:
        return "an invalid URL"


@dataclass(frozen=True, kw_only=True)
class ClientCredentialsGrant(_TokenEndpoint):
    """RFC 6749 §4.4: a new token for the client's own credentials."""

    scope: str | None = None

    async def fetch(self, current: TokenResponse | None) -> TokenResponse:
        request = prepare_client_credentials_request(
            self.token_url, self.client, scope=self.scope, auth_method=self.auth_method
        )
        return await request_token(
            self.transport,
            request,
            timeout=self.timeout,
            client_tls=self.client_tls,
            token_path=self.token_path,
        )


async def request_token(
    transport: HttpTransport,
    request: TokenRequest,
    *,
    timeout: float,
    client_tls: ClientTls | None = None,
    token_path: str | None = None,
) -> TokenResponse:
    """POST a token request and read the answer, translating failures into card errors.

    Whatever the endpoint answers is shown to people (a card's error, the connection's
    last_error, the callback page): secrets this request carried are blanked out of it,
    for a provider may well echo what it received."""
    secrets = SecretSet(request.sensitive_values())
    LOG_SECRETS.register(secrets.forms)
    try:
        return await _request_token(transport, request, timeout, client_tls, token_path)
    except CardFailed as exc:
        exc.message = secrets.redact_text(exc.message)
        exc.args = (exc.message,)
        if exc.body_excerpt is not None:
            exc.body_excerpt = secrets.redact_text(exc.body_excerpt)
        raise


async def send_to_endpoint(
    transport: HttpTransport,
    request: TokenRequest,
    timeout: float,
    client_tls: ClientTls | None,
    *,
    max_response_bytes: int,
) -> InboundResponse:
    """POST a token (or revocation) request, with the client's certificate if it has one.
    Never redirected: a 307/308 would carry the client's credentials (and a code or a
    token) to wherever the endpoint points."""
    outbound = OutboundRequest(
        "POST", parse_http_url(request.url), CIMultiDict(request.headers), request.body.encode()
    )
    return await client.send(
        transport,
        outbound,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
        follow_redirects=False,
        client_tls=client_tls,
    )


async def _request_token(
    transport: HttpTransport,
    request: TokenRequest,
    timeout: float,
    client_tls: ClientTls | None,
    token_path: str | None,
) -> TokenResponse:
    try:
        response = await send_to_endpoint(
            transport, request, timeout, client_tls, max_response_bytes=TOKEN_RESPONSE_LIMIT
        )
    except NetworkDenied:
        raise
    except CardFailed as exc:
        raise TokenRequestFailed(f"Token request failed: {exc.message}") from None
    if 300 <= response.status_code < 400:
        raise TokenRequestFailed(
            f"The token endpoint answered {response.status_code} (a redirect"
            f"{' to ' + _safe_location(response) if response.headers.get('Location') else ''}"
            "); token requests are never redirected, for they carry the client secret. "
            "Set the connection's token_url to the final URL.",
            status_code=response.status_code,
        )
    if response.status_code >= 500:
        raise TokenRequestFailed(
            f"The token endpoint answered {response.status_code}; the stored token was kept. "
            "Try again later.",
            status_code=response.status_code,
        )
    try:
        return parse_token_response(
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.body,
            token_path=token_path,
        )
    except TokenEndpointError as exc:
        if exc.error == "invalid_grant":
            raise NeedsAuthorization(
                f"The provider refused the grant (invalid_grant"
                f"{': ' + exc.description if exc.description else ''}). "
                "Re-authorize this connection.",
                status_code=exc.status,
            ) from None
        raise TokenRejected(
            f"The token endpoint refused the request ({exc}). Check the connection's "
            "client_id, client_secret (or client certificate), scope and token_auth_method.",
            status_code=exc.status,
        ) from None
    except MalformedTokenResponse as exc:
        raise TokenRequestFailed(
            f"The token endpoint's answer could not be read: {exc}.",
            status_code=response.status_code,
        ) from None


@dataclass(frozen=True, kw_only=True)
class RefreshTokenGrant(_TokenEndpoint):
    """RFC 6749 §6: a new access token (and maybe a rotated refresh token)."""

    async def fetch(self, current: TokenResponse | None) -> TokenResponse:
        if current is None or not current.refresh_token:
            raise NeedsAuthorization(
                "This connection has no valid token: authorize it (Authorize button, "
                "GET /api/v1/connections/{id}/authorize or `cardflow connection authorize`)."
                if current is None
                else "The access token expired and the provider gave no refresh token: "
                "re-authorize this connection (some providers need extra authorize_url "
                "parameters such as access_type=offline to issue one)."
            )
        request = prepare_refresh_request(
            self.token_url,
            self.client,
            refresh_token=current.refresh_token,
            auth_method=self.auth_method,
        )
        fresh = await request_token(
            self.transport,
            request,
            timeout=self.timeout,
            client_tls=self.client_tls,
            token_path=self.token_path,
        )
        if fresh.refresh_token is None:
            # RFC 6749 §6: no new refresh token means the old one stays valid.
            fresh = replace(fresh, refresh_token=current.refresh_token)
        if fresh.scope is None:
            fresh = replace(fresh, scope=current.scope)
        return fresh
