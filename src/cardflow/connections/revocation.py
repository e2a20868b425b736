"""Revoking a connection's tokens at its provider when they are let go (RFC 7009).

An OAuth or Client Credentials connection with a ``revocation_url`` revokes the tokens it
held when it is deleted, and the old ones when a new authorization replaces them. This
never stops the delete or the authorization: what happened is reported (the REST answer,
the CLI, the callback page) and logged, without any token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import Field

from cardflow.credentials import client_auth
from cardflow.credentials.authorization_code import OAuthConfig
from cardflow.credentials.base import AuthConfig
from cardflow.credentials.client_credentials import ClientCredentialsConfig
from cardflow.credentials.token_endpoint import TokenResponse
from cardflow.credentials.token_revocation import revoke_tokens, tokens_to_revoke
from cardflow.net.transport import HttpTransport
from cardflow.views import View

log = logging.getLogger("cardflow.connections")


class RevocationReport(View):
    """What became of the tokens a connection let go, at the provider's revocation URL."""

    revoked: bool = Field(description="The provider revoked every token cardflow sent it.")
    tokens: tuple[str, ...] = Field(
        description="The tokens it revoked: refresh_token, access_token.",
        examples=[["refresh_token", "access_token"]],
    )
    error: str | None = Field(
        description="Why a token was not revoked, in words (never the token itself)."
    )


@dataclass(frozen=True)
class PendingRevocation:
    """Tokens a connection lets go, and how to revoke them (never serialised)."""

    connection_id: str
    connection_name: str
    config: OAuthConfig | ClientCredentialsConfig
    token: TokenResponse
    replaced_by: TokenResponse | None = None  # a new authorization's tokens: kept


def pending_revocation(
    connection_id: str,
    connection_name: str,
    config: AuthConfig,
    token: TokenResponse | None,
    replaced_by: TokenResponse | None = None,
) -> PendingRevocation | None:
    """What to revoke, or None: no token, or no revocation URL."""
    if token is None or not isinstance(config, OAuthConfig | ClientCredentialsConfig):
        return None
    if not config.revocation_url:
        return None
    pending = PendingRevocation(connection_id, connection_name, config, token, replaced_by)
    if not tokens_to_revoke(token, keep=replaced_by):
        return None
    return pending


class TokenRevoker:
    def __init__(self, transport: HttpTransport, *, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout

    async def revoke(self, pending: PendingRevocation) -> RevocationReport:
        config = pending.config
        tokens = tokens_to_revoke(pending.token, keep=pending.replaced_by)
        try:
            result = await revoke_tokens(
                self._transport,
                config.revocation_url or "",
                client_auth.client_of(config),
                config.token_auth_method,
                tokens,
                timeout=self._timeout,
                client_tls=config.client_tls(),  # tls_client_auth: the certificate authenticates
            )
        except Exception as exc:  # never stops a delete or an authorization
            log.warning(
                "Revoking the tokens of connection %r failed: %s",
                pending.connection_name,
                type(exc).__name__,
            )
            return RevocationReport(
                revoked=False, tokens=(), error=f"revocation failed ({type(exc).__name__})"
            )
        error = "; ".join(f"{kind}: {why}" for kind, why in result.failed) or None
        if error:
            log.warning(
                "Revoking the tokens of connection %r at its revocation URL failed: %s",
                pending.connection_name,
                error,
            )
        else:
            log.info(
                "Revoked the %s of connection %r at its revocation URL.",
                " and ".join(result.revoked),
                pending.connection_name,
            )
        return RevocationReport(revoked=result.ok, tokens=result.revoked, error=error)
