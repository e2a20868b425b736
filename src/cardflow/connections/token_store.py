"""Tokens in the database: encrypted token sets, and the refresh lock of each connection.

The refresh lock dies with the process that holds it, so a crash mid-refresh never makes
the next process wait for anything to expire:

- PostgreSQL: a session-level advisory lock on a connection held for the refresh; when a
  process dies, its connections close and the server releases the lock at once.
- SQLite: an ``flock`` on a lock file beside the database (SQLite lives on one machine);
  the kernel releases it when the process dies. SQLite's own write lock would do too, but
  holding it for a refresh would stall every other write meanwhile.

Before a refresh request goes out, the row is marked (who, since when) and committed;
the mark is cleared with the new token. A mark found by the next refresher means a
refresh got no stored answer — its process stopped, or the answer was lost — which turns
a later ``invalid_grant`` into an exact explanation.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection as DbConnection
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cardflow.connections import status
from cardflow.credentials.token_endpoint import TokenResponse
from cardflow.store.db import Database
from cardflow.store.files import PRIVATE_DIR
from cardflow.store.keyring import Keyring, token_aad
from cardflow.store.models import Connection, ConnectionToken, utcnow

# pg_try_advisory_lock(int4, int4): cardflow's namespace, then the connection's hash.
_PG_LOCK_NAMESPACE = 0x63666C77


@dataclass
class RefreshLock:
    """A held refresh lock: a PostgreSQL connection, or an open lock file."""

    connection_id: str
    db_connection: DbConnection | None = None
    fd: int | None = None


@dataclass(frozen=True)
class UnansweredRefresh:
    """A refresh that started and never stored its answer."""

    owner: str
    started_at: datetime


def _lock_key(connection_id: str) -> int:
    digest = hashlib.sha256(connection_id.encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class SqlTokenStore:
    """The TokenStore of cardflow.credentials.token_manager, on SQLAlchemy."""

    def __init__(self, db: Database, keyring: Keyring, lock_dir: Path | None = None) -> None:
        self._db = db
        self._keyring = keyring
        self._lock_dir = lock_dir or _default_lock_dir(db)

    # -- tokens --------------------------------------------------------------------------

    def load(self, connection_id: str) -> tuple[TokenResponse, int] | None:
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id)
            token = read_token(session, self._keyring, row)
            return None if token is None or row is None else (token, row.generation)

    def save(self, connection_id: str, owner: str, token: TokenResponse) -> int:
        """Store a new token set and clear the refresh mark; the connection is ready."""
        with self._db.session() as session:
            row = self._row(session, connection_id, lock=True)
            self._write(session, row, token)
            row.refresh_owner = None
            row.refresh_started_at = None
            connection = session.get(Connection, connection_id)
            if connection is not None:
                status.token_saved(connection)
            session.flush()
            return row.generation

    def replace(self, connection_id: str, token: TokenResponse) -> TokenResponse | None:
        """Store the tokens of a new authorization, in one transaction: the connection is
        ready, and its version moves so every process drops what it cached. Returns the
        tokens it replaced (to revoke), if any."""
        with self._db.session() as session:
            connection = session.get(Connection, connection_id, with_for_update=True)
            if connection is None:
                return None
            row = self._row(session, connection_id, lock=True)
            previous = read_token(session, self._keyring, row)
            self._write(session, row, token)
            row.refresh_owner = None
            row.refresh_started_at = None
            status.authorized(connection)
            session.flush()
            return previous

    def clear(self, connection_id: str) -> None:
        """Forget a connection's token (its config changed)."""
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id)
            if row is not None:
                row.token_enc = None
                row.token_key_id = None
                row.expires_at = None
                row.generation += 1

    def grant_refused(self, connection_id: str, message: str, *, needs_authorization: bool) -> None:
        with self._db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is not None:
                status.grant_refused(connection, message, needs_authorization=needs_authorization)

    # -- the refresh in flight -----------------------------------------------------------

    def begin_refresh(self, connection_id: str, owner: str) -> UnansweredRefresh | None:
        """Mark a refresh as going out (committed before the request is sent); returns
        the mark a refresh left that never stored its answer, if any."""
        with self._db.session() as session:
            row = self._row(session, connection_id, lock=True)
            previous = (
                UnansweredRefresh(row.refresh_owner, row.refresh_started_at)
                if row.refresh_owner is not None and row.refresh_started_at is not None
                else None
            )
            row.refresh_owner = owner
            row.refresh_started_at = utcnow()
            return previous

    def end_refresh(self, connection_id: str, owner: str) -> None:
        """Clear the mark of a refresh whose outcome is known (refused, say)."""
        with self._db.session() as session:
            row = session.get(ConnectionToken, connection_id)
            if row is not None and row.refresh_owner == owner:
                row.refresh_owner = None
                row.refresh_started_at = None

    # -- the refresh lock ----------------------------------------------------------------

    def try_refresh_lock(self, connection_id: str) -> RefreshLock | None:
        """Take the connection's refresh lock if it is free (never waits)."""
        if self._db.is_sqlite:
            return self._try_file_lock(connection_id)
        return self._try_pg_lock(connection_id)

    def release_refresh_lock(self, lock: RefreshLock) -> None:
        if lock.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(lock.fd, fcntl.LOCK_UN)
            os.close(lock.fd)
            lock.fd = None
        if lock.db_connection is not None:
            connection, lock.db_connection = lock.db_connection, None
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:ns, :key)"),
                    {"ns": _PG_LOCK_NAMESPACE, "key": _lock_key(lock.connection_id)},
                )
                connection.commit()
            except DBAPIError:
                connection.invalidate()  # closing it is what releases the lock then
            finally:
                connection.close()

    def _try_pg_lock(self, connection_id: str) -> RefreshLock | None:
        connection = self._db.engine.connect()
        try:
            won = connection.execute(
                text("SELECT pg_try_advisory_lock(:ns, :key)"),
                {"ns": _PG_LOCK_NAMESPACE, "key": _lock_key(connection_id)},
            ).scalar()
            connection.commit()  # a session-level lock outlives the transaction
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if not won:
            connection.close()
            return None
        return RefreshLock(connection_id, db_connection=connection)

    def _try_file_lock(self, connection_id: str) -> RefreshLock | None:
        self._lock_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        name = hashlib.sha256(connection_id.encode()).hexdigest()[:32] + ".lock"
        fd = os.open(self._lock_dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return RefreshLock(connection_id, fd=fd)

    # -- helpers -------------------------------------------------------------------------

    def _row(self, session: Session, connection_id: str, *, lock: bool) -> ConnectionToken:
        row = session.get(ConnectionToken, connection_id, with_for_update=lock)
        if row is None:  # the first token of this connection (written under its lock)
            row = ConnectionToken(connection_id=connection_id, generation=0)
            session.add(row)
            session.flush()
        return row

    def _write(self, session: Session, row: ConnectionToken, token: TokenResponse) -> None:
        blob, key_id = self._keyring.encrypt(
            session, json.dumps(token.to_json()).encode(), token_aad(row.connection_id)
        )
        row.token_enc = blob
        row.token_key_id = key_id
        row.expires_at = datetime.fromtimestamp(token.expires_at, UTC) if token.expires_at else None
        row.generation = (row.generation or 0) + 1
        row.updated_at = utcnow()


def read_token(
    session: Session, keyring: Keyring, row: ConnectionToken | None
) -> TokenResponse | None:
    """The token set a row holds, decrypted; None if it holds none."""
    if row is None or row.token_enc is None:
        return None
    plain = keyring.decrypt(session, row.token_enc, token_aad(row.connection_id))
    return TokenResponse.from_json(json.loads(plain))


def _default_lock_dir(db: Database) -> Path:
    """``locks/<database name>/`` beside the SQLite database file (unused on PostgreSQL)."""
    path = db.url.removeprefix("sqlite:///")
    if not db.is_sqlite or not path or path == ":memory:":
        return Path(os.environ.get("TMPDIR", "/tmp")) / f"cardflow-locks-{os.getuid()}"  # noqa: S108
    return Path(path).parent / "locks" / Path(path).name


def describe_unanswered(refresh: UnansweredRefresh) -> str:
    """How to explain an ``invalid_grant`` that follows a refresh with no stored answer."""
    when = refresh.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"A refresh of this connection started at {when} never stored its answer (its "
        "cardflow process stopped, or the answer was lost): the provider rotated the refresh "
        "token but the answer was lost. Re-authorize this connection."
    )
