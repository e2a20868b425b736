"""The keyring: loads the master key, unwraps data keys, encrypts and decrypts secrets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardflow.errors import ConfigurationError
from cardflow.settings import Settings
from cardflow.store import crypto
from cardflow.store.db import Database
from cardflow.store.models import (
    Connection,
    ConnectionToken,
    DataKey,
    Flow,
    OAuthState,
    RunState,
)

_ACTIVE_KEY_TTL = 1.0  # seconds a read of the active key id is used for


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
    """Data keys unwrapped on demand and cached. Which key is active is re-read at most a
    second after it was last read: a rotation by another process is followed within that
    second (a value written meanwhile under the retired key stays readable, since retired
    keys in use are kept, and the next rotation re-encrypts it)."""

    def __init__(
        self,
        master_key: bytes,
        db: Database,
        *,
        on_rotate: Callable[[Session, RotationReport], None] | None = None,
    ) -> None:
        self._master_key = master_key
        self._db = db
        # told of each rotation inside its transaction (the audit log records it there)
        self._on_rotate = on_rotate
        self._keys: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._active: tuple[int, float] | None = None  # key id, when read (monotonic)

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
        self._active = None  # the new key is read back once committed
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
        cached = self._active
        if cached is not None and time.monotonic() - cached[1] < _ACTIVE_KEY_TTL:
            return cached[0]
        key_id = session.scalar(
            select(DataKey.id)
            .where(DataKey.status == "active")
            .order_by(DataKey.id.desc())
            .limit(1)
        )
        if key_id is None:
            return self._add_key(session)
        self._active = (key_id, time.monotonic())
        return key_id

    def encrypt(self, session: Session, plaintext: bytes, aad: str) -> tuple[bytes, int]:
        """Encrypt under the active data key; returns the blob and the key id."""
        key_id = self.active_key_id(session)
        return crypto.encrypt(self._key(session, key_id), key_id, plaintext, aad), key_id

    def decrypt(self, session: Session, blob: bytes, aad: str) -> bytes:
        return crypto.decrypt(self._key(session, crypto.blob_key_id(blob)), blob, aad)

    def rotate(self) -> RotationReport:
        """Re-encrypt every encrypted value (see ``ENCRYPTED``) under a new data key, in
        one transaction.

        Old keys are retired, not deleted, so a write that raced with the rotation stays
        readable; retired keys no longer used by any row are removed by the next rotation.
        """
        with self._db.session() as session:
            used = {
                key_id
                for column in ENCRYPTED
                for key_id in session.scalars(select(getattr(column.model, column.key_id)))
            }
            removed = 0
            for row in session.scalars(select(DataKey).where(DataKey.status == "retired")):
                if row.id not in used:
                    session.delete(row)
                    removed += 1
            for row in session.scalars(select(DataKey).where(DataKey.status == "active")):
                row.status = "retired"
            new_id = self._add_key(session)
            counts = {column.model: 0 for column in ENCRYPTED}
            for column in ENCRYPTED:
                blob_column = getattr(column.model, column.blob)
                for row in session.scalars(select(column.model).where(blob_column.is_not(None))):
                    aad = column.aad(row)
                    plain = self.decrypt(session, getattr(row, column.blob), aad)
                    blob = crypto.encrypt(self._keys[new_id], new_id, plain, aad)
                    setattr(row, column.blob, blob)
                    setattr(row, column.key_id, new_id)
                    counts[column.model] += 1
            report = RotationReport(new_id, counts[Connection], counts[ConnectionToken], removed)
            if self._on_rotate is not None:
                self._on_rotate(session, report)
        self._active = None
        return report


# The associated data binds each encrypted value to its row and column: a blob copied to
# another row or column fails to decrypt.


def secrets_aad(connection_id: str) -> str:
    return f"connection:{connection_id}:secrets"


def token_aad(connection_id: str) -> str:
    return f"connection:{connection_id}:token"


def client_token_aad(flow_id: str) -> str:
    return f"flow:{flow_id}:client_token"


def verifier_aad(state_hash: str) -> str:
    return f"oauth_state:{state_hash}:verifier"


def run_state_aad(run_id: str) -> str:
    return f"run:{run_id}:state"


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding encrypted values, the column naming their data key, and the
    associated data of a row's value."""

    model: type[Any]
    blob: str
    key_id: str
    aad: Callable[[Any], str]


ENCRYPTED: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(Connection, "secrets_enc", "secrets_key_id", lambda row: secrets_aad(row.id)),
    EncryptedColumn(
        ConnectionToken, "token_enc", "token_key_id", lambda row: token_aad(row.connection_id)
    ),
    EncryptedColumn(
        Flow, "client_token_enc", "client_token_key_id", lambda row: client_token_aad(row.id)
    ),
    EncryptedColumn(
        OAuthState, "verifier_enc", "verifier_key_id", lambda row: verifier_aad(row.state_hash)
    ),
    EncryptedColumn(RunState, "state_enc", "state_key_id", lambda row: run_state_aad(row.run_id)),
)
