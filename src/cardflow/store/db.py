"""Engine and session factory; migrations are applied with :func:`upgrade`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cardflow.errors import ConfigurationError
from cardflow.store.files import private_sqlite_file

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same for every cardflow process.
_PG_MIGRATION_LOCK = 0x63617264
_MIGRATION_LOCK = threading.Lock()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                private_sqlite_file(Path(path))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise ConfigurationError(
                f"CARDFLOW_DATABASE_URL is not a usable database URL ({exc}). "
                "Use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname."
            ) from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "connect", _note_checkin)  # new: no ping needed
            event.listen(self.engine, "checkin", _note_checkin)
            event.listen(self.engine, "checkout", self._ping_if_idle)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _ping_if_idle(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """SQLAlchemy's pessimistic disconnect check (its dialect's ping), on connections
        idle a while only: a DisconnectionError makes the pool replace the connection."""
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < _PING_AFTER_IDLE:
            return
        try:
            alive = self.engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection is gone ({type(exc).__name__})") from exc
        if not alive:
            raise DisconnectionError("a pooled connection is gone")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Apply every pending Alembic migration (safe with several processes starting)."""
        # Alembic keeps its running environment in module globals: one upgrade at a time
        # per process (other processes are kept out by the database lock below).
        with _MIGRATION_LOCK:
            if self._at_head():
                return
            self._upgrade()

    def at_head(self) -> bool:
        """The schema is at this version's last migration (OperationalError: no database)."""
        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current == head

    def _at_head(self) -> bool:
        try:
            return self.at_head()
        except OperationalError:
            return False

    @staticmethod
    def _alembic_config() -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def _upgrade(self) -> None:
        try:
            with self.engine.connect() as connection:
                if not self.is_sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                try:
                    config = self._alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    connection.commit()
                finally:
                    if not self.is_sqlite:
                        connection.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK}
                        )
                        connection.commit()
        except OperationalError as exc:
            raise ConfigurationError(
                f"Cannot open the database {self.safe_url}: {exc.orig}. "
                "Check CARDFLOW_DATABASE_URL (or CARDFLOW_HOME for the embedded SQLite)."
            ) from None

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


# A pooled connection idle longer than this is pinged before use (the database may have
# restarted or dropped it meanwhile); one used a moment ago is not, so a busy process does
# not pay a round trip per transaction as SQLAlchemy's pool_pre_ping would have it.
_PING_AFTER_IDLE = 1.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
