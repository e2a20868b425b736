"""Authorizing OAuth connections: the Authorize redirect and the callback."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update

from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.connections.revocation import TokenRevoker, pending_revocation
from cardflow.connections.service import ConnectionService, ConnectionView
from cardflow.connections.token_store import SqlTokenStore
from cardflow.credentials import client_auth
from cardflow.credentials.authorization_code import OAuthConfig
from cardflow.credentials.authorize_endpoint import (
    build_authorization_url,
    new_code_verifier,
    new_state,
    prepare_authorization_code_request,
)
from cardflow.credentials.grants import client_secret_values, request_token
from cardflow.credentials.token_endpoint import ClientCredentials, TokenResponse
from cardflow.errors import CardFailed, InvalidInput
from cardflow.net.transport import HttpTransport
from cardflow.redaction import SecretSet
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, verifier_aad
from cardflow.store.models import OAuthState, utcnow

STATE_LIFETIME = timedelta(minutes=10)


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class CallbackOutcome:
    """What the callback page shows."""

    ok: bool
    title: str
    message: str
    connection: ConnectionView | None = None


class AuthorizationService:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        connections: ConnectionService,
        tokens: SqlTokenStore,
        transport: HttpTransport,
        *,
        timeout: float,
        on_authorized: Callable[[str], None],
        revoker: TokenRevoker | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._audit = audit
        self._db = db
        self._keyring = keyring
        self._connections = connections
        self._tokens = tokens
        self._transport = transport
        self._timeout = timeout
        self._on_authorized = on_authorized
        self._revoker = revoker

    @property
    def redirect_uri(self) -> str:
        return self._connections.redirect_uri

    def begin(self, ref: str) -> str:
        """Create a single-use state and return the provider URL to send the browser to."""
        loaded = self._connections.load(ref)
        config = loaded.config
        if not isinstance(config, OAuthConfig):
            raise InvalidInput(
                f"Connection {loaded.name!r} is a {loaded.auth_type} connection; only oauth "
                "connections are authorized.",
                field="connection",
            )
        state = new_state()
        verifier = new_code_verifier() if config.pkce else None
        state_hash = _hash(state)
        now = utcnow()
        with self._db.session() as session:
            row = OAuthState(
                state_hash=state_hash,
                connection_id=loaded.id,
                connection_version=loaded.version,
                redirect_uri=self.redirect_uri,
                created_at=now,
                expires_at=now + STATE_LIFETIME,
            )
            if verifier is not None:
                row.verifier_enc, row.verifier_key_id = self._keyring.encrypt(
                    session, verifier.encode(), verifier_aad(state_hash)
                )
            session.add(row)
        return build_authorization_url(
            config.authorize_url,
            client_id=config.client_id,
            redirect_uri=self.redirect_uri,
            scope=config.scope,
            state=state,
            code_verifier=verifier,
        )

    def _consume(self, state: str) -> tuple[OAuthState | None, str | None, str | None]:
        """Mark the state used; returns (state row, its PKCE verifier, why it was refused)."""
        state_hash = _hash(state)
        now = utcnow()
        with self._db.session() as session:
            row = session.get(OAuthState, state_hash)
            if row is None:
                return None, None, "This authorization response is not one cardflow asked for."
            if row.used_at is not None:
                return None, None, "This authorization response was already used."
            if row.expires_at <= now:
                return None, None, "This authorization request expired (after 10 minutes)."
            won = session.execute(
                update(OAuthState)
                .where(OAuthState.state_hash == state_hash, OAuthState.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                return None, None, "This authorization response was already used."
            verifier = None
            if row.verifier_enc is not None:
                verifier = self._keyring.decrypt(
                    session, row.verifier_enc, verifier_aad(state_hash)
                ).decode()
            return row, verifier, None

    async def complete(self, params: Mapping[str, str]) -> CallbackOutcome:
        """Finish an authorization from the provider's redirect; stored tokens change only
        on success. The audit log records the outcome: one with no connection to name
        (no state, an unknown or spent one) as a bounded failure, since anyone may call."""
        outcome = await self._complete(params)
        await asyncio.to_thread(self._note, outcome, params.get("error"))
        return outcome

    def _note(self, outcome: CallbackOutcome, error: str | None) -> None:
        view = outcome.connection
        if view is None:
            if self._audit is not None:
                self._audit.failed("connection.authorization_failed", outcome.title)
            return
        details = {"result": outcome.title}
        if outcome.ok:  # says whether the tokens it replaced were revoked
            details["message"] = outcome.message
        elif error:
            details["provider_error"] = error[:100]
        with self._db.session() as session:
            record(
                session,
                "connection.authorized" if outcome.ok else "connection.authorization_failed",
                Target("connection", view.id, view.name),
                details=details,
            )

    async def _complete(self, params: Mapping[str, str]) -> CallbackOutcome:
        state = params.get("state")
        if not state:
            return CallbackOutcome(
                False,
                "Authorization failed",
                "The provider's answer has no state, so it cannot be trusted. Start again "
                "from the connection's Authorize button.",
            )
        row, verifier, refused = await asyncio.to_thread(self._consume, state)
        if row is None:
            return CallbackOutcome(
                False,
                "Authorization refused",
                f"{refused} Nothing was changed. Start again from the connection's "
                "Authorize button.",
            )
        view = await asyncio.to_thread(self._connections.get, row.connection_id)
        loaded = await asyncio.to_thread(self._connections.load, row.connection_id)
        config = loaded.config
        if "error" in params:
            description = params.get("error_description")
            detail = f"{params['error']}" + (f": {description}" if description else "")
            if isinstance(config, OAuthConfig):  # the page never repeats the client secret
                client = ClientCredentials(config.client_id, config.client_secret)
                detail = SecretSet(client_secret_values(client)).redact_text(detail)
            return CallbackOutcome(
                False,
                "The provider refused the authorization",
                f"{detail}. The connection's stored tokens were not changed.",
                view,
            )
        code = params.get("code")
        if not code:
            return CallbackOutcome(
                False, "Authorization failed", "The provider sent no code.", view
            )
        if not isinstance(config, OAuthConfig) or loaded.version != row.connection_version:
            return CallbackOutcome(
                False,
                "Authorization failed",
                "The connection changed while it was being authorized. Start again.",
                view,
            )
        request = prepare_authorization_code_request(
            config.token_url,
            client_auth.client_of(config),
            code=code,
            redirect_uri=row.redirect_uri,
            code_verifier=verifier,
            auth_method=config.token_auth_method,
        )
        try:
            token: TokenResponse = await request_token(
                self._transport,
                request,
                timeout=self._timeout,
                client_tls=config.client_tls(),
                token_path=config.token_response_path,
            )
        except CardFailed as exc:
            return CallbackOutcome(
                False,
                "The token exchange failed",
                f"{exc.message} The connection's stored tokens were not changed.",
                view,
            )
        previous = await asyncio.to_thread(self._tokens.replace, row.connection_id, token)
        self._on_authorized(row.connection_id)
        view = await asyncio.to_thread(self._connections.get, row.connection_id)
        return CallbackOutcome(
            True,
            "Connection ready",
            f"{view.name} is authorized and ready to use."
            + await self._revoke_replaced(view, config, previous, token),
            view,
        )

    async def _revoke_replaced(
        self,
        view: ConnectionView,
        config: OAuthConfig,
        previous: TokenResponse | None,
        token: TokenResponse,
    ) -> str:
        """Revoke the tokens a new authorization replaced; say how it went (or nothing)."""
        pending = pending_revocation(view.id, view.name, config, previous, replaced_by=token)
        if pending is None or self._revoker is None:
            return ""
        report = await self._revoker.revoke(pending)
        if report.revoked:
            return " The tokens it replaced were revoked at the provider."
        return (
            f" The tokens it replaced could not be revoked at the provider ({report.error}); "
            "they stay valid there until they expire."
        )
