"""The keyring: loads the master key, unwraps data keys, encrypts and decrypts secrets."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardflow.errors import ConfigurationError
from cardflow.settings import Settings
from cardflow.store import crypto
from cardflow.store.db import Database
from cardflow.store.models import Connection, ConnectionToken, DataKey, Flow, OAuthState


def load_master_key(settings: Settings, db: Database) -> bytes:
    """The master key from CARDFLOW_MASTER_KEY or the key file, created only for a new database.

    A database that already holds data keys never gets a fresh key silently: that would
    make every stored secret unreadable.
    """
    if settings.master_key is not None:
        return crypto.parse_master_key(settings.master_key.get_secret_value())
    path = settings.key_file
    if path.exists():
        return crypto.read_key_file(path)
    with db.session() as session:
        has_keys = session.scalar(select(DataKey.id).limit(1)) is not None
    if has_keys:
        raise ConfigurationError(
            f"This database holds encrypted secrets but no master key was found: set "
            f"CARDFLOW_MASTER_KEY or restore the key file {path}."
        )
    return crypto.create_key_file(path)


@dataclass(frozen=True)
class RotationReport:
    new_key_id: int
    connections: int
    tokens: int
    retired_keys_removed: int


class Keyring:
    """Data keys unwrapped on demand and cached; the active key is re-read for each write."""

    def __init__(self, master_key: bytes, db: Database) -> None:
        self._master_key = master_key
        self._db = db
        self._keys: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Make sure the master key opens this database's keys; create the first data key."""
        with self._db.session() as session:
            rows = session.scalars(select(DataKey)).all()
            for row in rows:
                self._keys[row.id] = crypto.unwrap_key(self._master_key, row.wrapped)
            if not any(row.status == "active" for row in rows):
                self._add_key(session)

    def _add_key(self, session: Session) -> int:
        data_key = crypto.new_data_key()
        row = DataKey(wrapped=crypto.wrap_key(self._master_key, data_key), status="active")
        session.add(row)
        session.flush()
        with self._lock:
            self._keys[row.id] = data_key
        return row.id

    def _key(self, session: Session, key_id: int) -> bytes:
        with self._lock:
            key = self._keys.get(key_id)
        if key is None:
            row = session.get(DataKey, key_id)
            if row is None:
                raise crypto.DecryptionError(f"Data key {key_id} is missing from the database.")
            key = crypto.unwrap_key(self._master_key, row.wrapped)
            with self._lock:
                self._keys[key_id] = key
        return key

    def active_key_id(self, session: Session) -> int:
        key_id = session.scalar(
            select(DataKey.id)
            .where(DataKey.status == "active")
            .order_by(DataKey.id.desc())
            .limit(1)
        )
        if key_id is None:
            return self._add_key(session)
        return key_id

    def encrypt(self, session: Session, plaintext: bytes, aad: str) -> tuple[bytes, int]:
        """Encrypt under the active data key; returns the blob and the key id."""
        key_id = self.active_key_id(session)
        return crypto.encrypt(self._key(session, key_id), key_id, plaintext, aad), key_id

    def decrypt(self, session: Session, blob: bytes, aad: str) -> bytes:
        return crypto.decrypt(self._key(session, crypto.blob_key_id(blob)), blob, aad)

    def rotate(self) -> RotationReport:
        """Re-encrypt every secret and token under a new data key, in one transaction.

        Old keys are retired, not deleted, so a write that raced with the rotation stays
        readable; retired keys no longer used by any row are removed by the next rotation.
        """
        with self._db.session() as session:
            used = {
                *session.scalars(select(Connection.secrets_key_id)),
                *session.scalars(select(ConnectionToken.token_key_id)),
                *session.scalars(select(Flow.client_token_key_id)),
                *session.scalars(select(OAuthState.verifier_key_id)),
            }
            removed = 0
            for row in session.scalars(select(DataKey).where(DataKey.status == "retired")):
                if row.id not in used:
                    session.delete(row)
                    removed += 1
            for row in session.scalars(select(DataKey).where(DataKey.status == "active")):
                row.status = "retired"
            new_id = self._add_key(session)
            connections = tokens = 0
            for conn in session.scalars(
                select(Connection).where(Connection.secrets_enc.is_not(None))
            ):
                assert conn.secrets_enc is not None
                aad = secrets_aad(conn.id)
                plain = self.decrypt(session, conn.secrets_enc, aad)
                conn.secrets_enc = crypto.encrypt(self._keys[new_id], new_id, plain, aad)
                conn.secrets_key_id = new_id
                connections += 1
            for flow in session.scalars(select(Flow).where(Flow.client_token_enc.is_not(None))):
                assert flow.client_token_enc is not None
                aad = f"flow:{flow.id}:client_token"
                plain = self.decrypt(session, flow.client_token_enc, aad)
                flow.client_token_enc = crypto.encrypt(self._keys[new_id], new_id, plain, aad)
                flow.client_token_key_id = new_id
            for token in session.scalars(
                select(ConnectionToken).where(ConnectionToken.token_enc.is_not(None))
            ):
                assert token.token_enc is not None
                aad = token_aad(token.connection_id)
                plain = self.decrypt(session, token.token_enc, aad)
                token.token_enc = crypto.encrypt(self._keys[new_id], new_id, plain, aad)
                token.token_key_id = new_id
                tokens += 1
        return RotationReport(new_id, connections, tokens, removed)


def secrets_aad(connection_id: str) -> str:
    return f"connection:{connection_id}:secrets"


def token_aad(connection_id: str) -> str:
    return f"connection:{connection_id}:token"
