"""SQLAlchemy models: the tables cardflow keeps (schema changes go through Alembic)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def cardflow_object(name: str | None, type_: str, parent_names: Any) -> bool:
    """For Alembic's comparisons: procrastinate's tables (PostgreSQL) are its own."""
    return not (type_ == "table" and name is not None and name.startswith("procrastinate_"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class DataKey(Base):
    """A data key, stored only wrapped by the master key."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | retired
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("con"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    auth_type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Names of the secret fields that hold a value: what the API shows as {"set": true}.
    secret_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Hosts its credentials may be sent to (exact or *.domain, optional :port); empty: any.
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where cards' relative URLs resolve (not a secret; its host is among allowed_hosts).
    base_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who may use it in cards besides admins: ["everyone"], or "role:<role>" and
    # "user:<user id>" entries (cardflow.connections.sharing).
    shared_with: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["everyone"], server_default='["everyone"]'
    )
    secrets_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    secrets_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="ready")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last 401/403 a card call with it got, until a call succeeds (all null: none).
    # Written only then, never on a success otherwise (see connections.rejections).
    rejected_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rejected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    rejected_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rejected_flow_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rejected_card_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What Test connection sends ({"method", "url"}; not secret), or null: none set.
    test_request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    token: Mapped[ConnectionToken | None] = relationship(
        back_populates="connection", cascade="all, delete-orphan", passive_deletes=True
    )


class ConnectionToken(Base):
    """A connection's current OAuth token set (encrypted) and its refresh lease."""

    __tablename__ = "connection_tokens"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    token_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    token_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Bumped on every write: readers use it to see that another process refreshed.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # Set (and committed) before a refresh request goes out, cleared when its answer is
    # stored: still set later, it says a process stopped while its refresh was in flight.
    refresh_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refresh_started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    connection: Mapped[Connection] = relationship(back_populates="token")


class OAuthState(Base):
    """A pending authorization: single-use, bound to one connection, short-lived."""

    __tablename__ = "oauth_states"

    # SHA-256 of the state sent to the provider: the database never holds a usable state.
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    connection_version: Mapped[int] = mapped_column(Integer)
    redirect_uri: Mapped[str] = mapped_column(Text)
    verifier_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    verifier_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class User(Base):
    """A person who may use cardflow, with a role (cardflow.access.roles.Role)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Single sign-on: the provider's subject ("sub") this user logs in as.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)


class ApiToken(Base):
    """An API token for /api/v1, stored as a SHA-256 hash (tokens are 256-bit random).

    It acts for its user, with their role or the narrower ``role`` it was created with."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tok"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # None: the user's role, whatever it is at the time of a request.
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Flow(Base):
    """A flow: its document (YAML/JSON schema), trigger alias and encrypted client token."""

    __tablename__ = "flows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("flw"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    alias: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    client_token_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The number of its newest saved version (FlowVersion); 0 before the first is written.
    saved_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlowVersion(Base):
    """A flow's document as one save left it: numbered 1, 2, … per flow, with who saved
    it and an optional note. The oldest are dropped past CARDFLOW_MAX_FLOW_VERSIONS."""

    __tablename__ = "flow_versions"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Who saved it, as cardflow.access.actor.saved_by writes it ("token:deploy (alice)",
    # "web (alice)", "cli (owner)").
    actor: Mapped[str] = mapped_column(String(250))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("run"))
    flow_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    trigger: Mapped[str] = mapped_column(String(32))  # card_test | manual | api_endpoint | ...
    # queued | running | succeeded | failed (indexed: processes look for unfinished runs)
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The trigger's data, kept only when the flow's save_data is on (redacted).
    trigger_data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Card executions past CARDFLOW_MAX_RECORDED_CARDS: counted, not recorded one by one.
    cards_omitted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What happened to the run itself: handed to the queue, resumed by another worker…
    # ([{"at": ISO time, "type": …, "message": …}], oldest first).
    events: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The run this one retries (from its failed card).
    retry_of: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # The cardflow process executing it (see Process); None for runs from before.
    process_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The flow's saved version (FlowVersion.number) the run ran; None for card tests and
    # runs from before versions were kept.
    flow_version: Mapped[int | None] = mapped_column(Integer, nullable=True)

    cards: Mapped[list[RunCard]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="RunCard.position",
    )


class RunCard(Base):
    __tablename__ = "run_cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    card_key: Mapped[str] = mapped_column(String(100))  # the card's id within the flow
    card: Mapped[str] = mapped_column(String(100))  # the card type, e.g. api_connector.get
    connection_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[float | None] = mapped_column(nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A paginating card (Get, Post, Raw Request with pagination): the pages it read.
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    run: Mapped[Run] = relationship(back_populates="cards")


class RunState(Base):
    """A queued run's progress: the flow as it was, the trigger, each completed card's
    outputs and where to go on. Encrypted (it holds secrets even when save_data is off);
    removed when the run ends. No foreign key: it may be written before the run record."""

    __tablename__ = "run_states"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The top-level card the run goes on from (readable without the key, for operators).
    next_card: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduleFire(Base):
    """A scheduled flow's fire time, claimed once (the key makes it once across processes)
    with the run it started (None: skipped, as catch_up: false says)."""

    __tablename__ = "schedule_fires"

    flow_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlowTestState(Base):
    """The builder's testing of a flow — its test data and each card's last Test result,
    as the builder showed them (redacted) — kept until the flow is deleted."""

    __tablename__ = "flow_test_states"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Process(Base):
    """A live cardflow process that executes runs (serve, worker, CLI or library), and its
    heartbeat: runs of a process that stopped beating are ended as interrupted."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginLink(Base):
    """A one-time web link, stored as a SHA-256 hash: a login link for a user (the owner's
    ``cardflow login-link``), or an invitation, which creates its user when opened."""

    __tablename__ = "login_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("lnk"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # A login link: the user it logs in.
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    # An invitation: the user it creates.
    invite_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    invite_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    invite_role: Mapped[str | None] = mapped_column(String(16), nullable=True)


class WebSession(Base):
    """A logged-in browser; the cookie holds the token, the database only its hash."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ses"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class AuditEvent(Base):
    """One change, as the audit log keeps it: who (the actor), when, from where, what
    (action and target) and what changed (never a secret's value). Only ever inserted;
    deleted only by the retention sweep."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    actor_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    target_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # [{"field": …, "old": …, "new": …}] or, for a secret, [{"field": …, "changed": true}]
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # What else is worth knowing: a revocation's outcome, why a login failed…
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The user behind the actor (a token's or session's user; the owner for the CLI), as
    # they were named then: no foreign key, an entry outlives its user.
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    user_name: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SsoLogin(Base):
    """A single sign-on that has started: the browser went to the provider with ``state``
    (stored hashed); the callback uses it once, within minutes, for its nonce and PKCE
    verifier."""

    __tablename__ = "sso_logins"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sso"))
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
