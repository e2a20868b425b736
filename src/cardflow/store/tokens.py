"""Tokens in the database: encrypted token sets and the cross-process refresh lease."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardflow.oauth2.tokens import TokenResponse
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, token_aad
from cardflow.store.models import Connection, ConnectionToken, utcnow


class SqlTokenStore:
    """The TokenStore of cardflow.auth.tokens, on SQLAlchemy."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self._db = db
        self._keyring = keyring

    def load(self, connection_id: str) -> tuple[TokenResponse, int] | None:
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id)
            if row is None or row.token_enc is None:
                return None
            plain = self._keyring.decrypt(session, row.token_enc, token_aad(connection_id))
            return TokenResponse.from_json(json.loads(plain)), row.generation

    def try_lease(self, connection_id: str, owner: str, seconds: float) -> bool:
        """Take the refresh lease (free, expired, or already ours) with one UPDATE; the
        token row is created the first time a connection needs one."""
        if self._take_lease(connection_id, owner, seconds):
            return True
        return self._create_row(connection_id) and self._take_lease(connection_id, owner, seconds)

    def _take_lease(self, connection_id: str, owner: str, seconds: float) -> bool:
        now = utcnow()
        with self._db.session() as session:
            result = session.execute(
                update(ConnectionToken)
                .where(
                    ConnectionToken.connection_id == connection_id,
                    or_(
                        ConnectionToken.lease_owner.is_(None),
                        ConnectionToken.lease_until < now,
                        ConnectionToken.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _create_row(self, connection_id: str) -> bool:
        """True if the row was missing and is there now (created here or by a racer)."""
        with self._db.session() as session:
            if session.get(ConnectionToken, connection_id) is not None:
                return False  # it exists: the lease is simply held by someone else
        try:
            with self._db.session() as session:
                session.add(ConnectionToken(connection_id=connection_id))
        except IntegrityError:
            pass  # another process created it first
        return True

    def save(self, connection_id: str, owner: str, token: TokenResponse) -> int:
        """Store a new token set (whatever the lease says: losing a rotated token is worse)."""
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id, with_for_update=True)
            if row is None:
                row = ConnectionToken(connection_id=connection_id, generation=0)
                session.add(row)
            self._write(session, row, token)
            if row.lease_owner == owner:
                row.lease_owner = None
                row.lease_until = None
            connection = session.get(Connection, connection_id)
            if connection is not None and connection.status != "ready":
                connection.status = "ready"
                connection.last_error = None
            session.flush()
            return row.generation

    def replace(self, connection_id: str, token: TokenResponse) -> int:
        """Store the tokens of a new authorization, in one transaction: the connection is
        ready, and its version moves so every process drops what it cached."""
        with self._db.session() as session:
            connection = session.get(Connection, connection_id, with_for_update=True)
            if connection is None:
                return 0
            row = session.get(ConnectionToken, connection_id, with_for_update=True)
            if row is None:
                row = ConnectionToken(connection_id=connection_id, generation=0)
                session.add(row)
            self._write(session, row, token)
            row.lease_owner = None
            row.lease_until = None
            connection.status = "ready"
            connection.last_error = None
            connection.version += 1
            connection.updated_at = utcnow()
            session.flush()
            return row.generation

    def _write(self, session: Session, row: ConnectionToken, token: TokenResponse) -> None:
        blob, key_id = self._keyring.encrypt(
            session, json.dumps(token.to_json()).encode(), token_aad(row.connection_id)
        )
        row.token_enc = blob
        row.token_key_id = key_id
        row.expires_at = datetime.fromtimestamp(token.expires_at, UTC) if token.expires_at else None
        row.generation = (row.generation or 0) + 1
        row.updated_at = utcnow()

    def release(self, connection_id: str, owner: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(ConnectionToken)
                .where(
                    ConnectionToken.connection_id == connection_id,
                    ConnectionToken.lease_owner == owner,
                )
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def mark_status(self, connection_id: str, status: str, message: str) -> None:
        with self._db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is not None:
                connection.status = status
                connection.last_error = message
                connection.updated_at = utcnow()

    def clear(self, connection_id: str) -> None:
        """Forget a connection's token (its config changed)."""
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id)
            if row is not None:
                row.token_enc = None
                row.token_key_id = None
                row.expires_at = None
                row.generation += 1
