"""Revoking tokens at the provider (RFC 7009): the refresh token first (which should end
the grant's access tokens too, §2.1), then the access token.

Revocation is best effort: a provider that refuses or cannot be reached is reported in
words — never with a token in them — and never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cardflow.credentials.grants import send_to_endpoint
from cardflow.credentials.token_endpoint import (
    ClientCredentials,
    TokenAuthMethod,
    TokenRequest,
    TokenResponse,
    prepare_revocation_request,
)
from cardflow.errors import CardFailed
from cardflow.net.tls import ClientTls
from cardflow.net.transport import HttpTransport
from cardflow.redaction import LOG_SECRETS, SecretSet

REVOCATION_RESPONSE_LIMIT = 64 * 1024
_EXCERPT = 200

TokenKind = Literal["refresh_token", "access_token"]


@dataclass(frozen=True)
class RevocationResult:
    """What the provider said to each token sent for revocation."""

    revoked: tuple[TokenKind, ...]
    failed: tuple[tuple[TokenKind, str], ...]  # (token kind, why), in words

    @property
    def ok(self) -> bool:
        return not self.failed


def tokens_to_revoke(
    old: TokenResponse, *, keep: TokenResponse | None = None
) -> list[tuple[TokenKind, str]]:
    """The tokens of ``old`` to revoke, refresh token first; any that ``keep`` (the tokens
    replacing them) still uses is left alone, for revoking it would end the new grant."""
    kept = {keep.access_token, keep.refresh_token} if keep is not None else set()
    found: list[tuple[TokenKind, str]] = []
    if old.refresh_token and old.refresh_token not in kept:
        found.append(("refresh_token", old.refresh_token))
    if old.access_token and old.access_token not in kept:
        found.append(("access_token", old.access_token))
    return found


async def revoke_tokens(
    transport: HttpTransport,
    revocation_url: str,
    client_credentials: ClientCredentials,
    auth_method: TokenAuthMethod,
    tokens: list[tuple[TokenKind, str]],
    *,
    timeout: float,
    client_tls: ClientTls | None = None,
) -> RevocationResult:
    """Ask the provider to revoke each token, authenticating as at the token endpoint (with
    ``client_tls``, the connection's client certificate is presented as it is there: what
    authenticates a ``tls_client_auth`` client)."""
    revoked: list[TokenKind] = []
    failed: list[tuple[TokenKind, str]] = []
    for kind, token in tokens:
        request = prepare_revocation_request(
            revocation_url,
            client_credentials,
            token=token,
            token_type_hint=kind,
            auth_method=auth_method,
        )
        secrets = SecretSet([*request.sensitive_values(), token])
        LOG_SECRETS.register(secrets.forms)
        problem = await _send(transport, request, timeout, client_tls)
        if problem is None:
            revoked.append(kind)
        else:
            failed.append((kind, secrets.redact_text(problem)))
    return RevocationResult(tuple(revoked), tuple(failed))


async def _send(
    transport: HttpTransport, request: TokenRequest, timeout: float, client_tls: ClientTls | None
) -> str | None:
    """None if the provider revoked the token (RFC 7009 §2.2: a 200), else why not."""
    try:
        response = await send_to_endpoint(
            transport, request, timeout, client_tls, max_response_bytes=REVOCATION_RESPONSE_LIMIT
        )
    except CardFailed as exc:
        return f"the revocation endpoint was not reached: {exc.message}"
    if response.status_code == 200:
        return None
    text = response.body[:_EXCERPT].decode("utf-8", errors="replace").strip()
    return f"the revocation endpoint answered {response.status_code}" + (
        f": {text}" if text else ""
    )
