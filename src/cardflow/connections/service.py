"""Connections: create, read, update and delete, with secrets encrypted and write-only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from yarl import URL

from cardflow.access.roles import Caller, Role
from cardflow.audit.record import Target, created, diff, record
from cardflow.connections import status
from cardflow.connections.rejections import CallSite
from cardflow.connections.revocation import (
    PendingRevocation,
    RevocationReport,
    pending_revocation,
)
from cardflow.connections.sharing import normalize_shared_with, shared_with
from cardflow.connections.status import ConnectionStatus
from cardflow.connections.token_store import read_token
from cardflow.credentials.base import CLIENT_TLS_SECRET_FIELDS, AuthConfig, AuthType
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import (
    Conflict,
    ConnectionInUse,
    ConnectionNotFound,
    Forbidden,
    InvalidInput,
)
from cardflow.net.hosts import AllowedHosts, normalize_allowed_hosts, widened
from cardflow.net.urls import (
    check_base_url,
    check_relative_url,
    is_relative_url,
    parse_http_url,
    resolve_url,
)
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, secrets_aad
from cardflow.store.models import Connection, ConnectionToken, new_id, utcnow
from cardflow.validation import validate
from cardflow.views import Timestamp, View

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FlowUse(View):
    """A flow whose cards name a connection."""

    id: str
    name: str


# Who uses which connection, read in one pass: connection ref as written (id or name) ->
# the flows naming it.
UsageIndex = Callable[[Session], dict[str, list[FlowUse]]]


class Rejection(View):
    """The last 401 or 403 a card call with the connection got (until one succeeds)."""

    status_code: int = Field(examples=[401])
    at: Timestamp
    run_id: str | None = Field(description="The run of the call (none for a card tested alone).")
    flow_id: str | None
    flow_name: str | None = Field(description="The flow's name, while it uses the connection.")
    card_id: str | None = Field(description="The card's id in the flow.")


MAX_TEST_URL_LENGTH = 2048


class ConnectionTestRequest(BaseModel):
    """What Test connection sends, with the connection's auth: not a secret, and bound
    to ``allowed_hosts`` like any card call."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_serialization_defaults_required=True
    )

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS (no body)."
    )
    url: str = Field(
        max_length=MAX_TEST_URL_LENGTH,
        description="An absolute http:// or https:// URL of the service, e.g. its "
        "current-user endpoint, or a path (/user) under the connection's base_url, resolved "
        "as cards' relative URLs are; its host must be among the allowed_hosts.",
        examples=["https://api.github.com/user", "/user"],
    )

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("give a whole https:// URL, or a path under the base_url")
        if is_relative_url(text):
            check_relative_url(text)
        else:
            parse_http_url(text)
        if "#" in text:
            raise ValueError("the URL must not have a #fragment")
        return text

    @property
    def relative(self) -> bool:
        """The url is a path under the connection's base_url."""
        return is_relative_url(self.url)

    def target(self, base_url: str | None) -> URL:
        """The URL to send to: the url as it is, or under ``base_url`` (ValueError)."""
        return resolve_url(self.url, base_url)


def _test_request(value: object, base_url: str | None) -> dict[str, Any] | None:
    """A test request as stored (None: none); a path needs the connection's base_url."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(
            'test_request must be an object: {"method": "GET", "url": "https://…"}.',
            field="test_request",
        )
    probe = validate(ConnectionTestRequest, value, "test_request")
    _check_test_base(probe, base_url)
    return probe.model_dump()


def _check_test_base(probe: ConnectionTestRequest, base_url: str | None) -> None:
    if probe.relative and not base_url:
        raise InvalidInput(
            f"test_request.url: {probe.url!r} is a path and the connection has no base_url: "
            "give a whole https:// URL, or set the connection's base_url.",
            field="test_request.url",
        )


class ConnectionView(View):
    """A connection as users see it: secrets only as ``{"set": true|false}``."""

    id: str
    name: str
    auth_type: str = Field(description=", ".join(AUTH_TYPES))
    config: dict[str, Any] = Field(
        description='Its config; each secret field only as {"set": true|false}.'
    )
    allowed_hosts: tuple[str, ...] = Field(description="Hosts its credentials may go to; [] = any.")
    base_url: str | None = Field(
        description="Where cards' relative URLs (/user, repos/a/b) resolve; null: none."
    )
    shared_with: tuple[str, ...] = Field(
        description='Who may use it in cards besides admins: "everyone", "role:<role>", '
        '"user:<user id>" entries.',
    )
    status: ConnectionStatus
    last_error: str | None = Field(description="What went wrong, or what to do, in words.")
    warnings: tuple[str, ...] = Field(description="Things to fix, in words.")
    redirect_uri: str | None = Field(
        description="OAuth: the redirect URI to register with the provider."
    )
    used_by: tuple[FlowUse, ...] = Field(
        description="The flows whose cards use it (it cannot be deleted while any do)."
    )
    rejected: Rejection | None = Field(
        description="The upstream rejected its credentials (HTTP 401 or 403) at the last "
        "such answer; null once a later call succeeds or the credentials change."
    )
    test_request: ConnectionTestRequest | None = Field(
        description="What Test connection (POST /api/v1/connections/{ref}/test) sends; "
        "null: none set.",
    )
    created_at: Timestamp
    updated_at: Timestamp


class ConnectionDeleted(View):
    """A deleted connection, and what became of its tokens at the provider."""

    deleted: bool = True
    id: str
    name: str
    revocation: RevocationReport | None = Field(
        description="The tokens it held, revoked at its revocation_url (RFC 7009); null "
        "when it has no revocation_url or held no token. A failed revocation does not "
        "stop the delete: it is said here."
    )


# Sends a revocation and says how it went (cardflow.connections.revocation.TokenRevoker,
# run to the end; it never raises).
Revoke = Callable[[PendingRevocation], RevocationReport]


class Resolved(NamedTuple):
    """A connection found by id or name: what a process checks its cache against."""

    id: str
    version: int
    rejected: bool  # a rejection is on record


@dataclass(frozen=True)
class LoadedConnection:
    """A connection with its decrypted config, for building its auth (never serialised)."""

    id: str
    name: str
    version: int
    auth_type: str
    config: AuthConfig
    allowed_hosts: tuple[str, ...] = ()
    base_url: str | None = None


# An update's "left out" where None means something (a test_request removed).
UNCHANGED: Any = object()


def _kept(value: object) -> bool:
    """A secret field's value in an update that means: keep the stored secret."""
    return value is None or (isinstance(value, dict) and bool(value.get("set")))


def _by_ref(ref: str, *columns: Any) -> Select[Any]:
    """A connection by id or by name (an id wins if a name looks like one)."""
    return (
        select(*columns)
        .where(or_(Connection.id == ref, Connection.name == ref))
        .order_by((Connection.id == ref).desc())
        .limit(1)
    )


def _origin(url: object) -> tuple[str, str, int | None] | None:
    """Where a URL sends what goes to it: scheme, host and port (its path does not matter)."""
    if not isinstance(url, str) or not url:
        return None
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port


def _given(kind: AuthType, config: dict[str, Any]) -> dict[str, Any]:
    """A config without its derived fields (a public key shown with it): those are worked
    out, never given, and one sent back as it was shown is ignored."""
    return {key: value for key, value in config.items() if key not in kind.config.derived_fields}


def _target(row: Connection) -> Target:
    return Target("connection", row.id, row.name)


def _secret_keys(kind: AuthType) -> set[str]:
    """The audited fields whose values never go in the audit log."""
    return {f"config.{name}" for name in kind.config.secret_fields}


def _auth_type(value: object) -> AuthType:
    if not isinstance(value, str) or value not in AUTH_TYPES:
        raise InvalidInput(f"auth_type must be one of: {', '.join(AUTH_TYPES)}.", field="auth_type")
    return AUTH_TYPES[value]


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            "name is required: a nickname such as "
            "'JIRA Service Management - OAuth - service_account'.",
            field="name",
        )
    name = value.strip()
    if len(name) > 200:
        raise InvalidInput("name is longer than 200 characters.", field="name")
    if _CONTROL.search(name):
        raise InvalidInput("name must not contain control characters.", field="name")
    return name


def _allowed_hosts(value: object) -> list[str]:
    try:
        return normalize_allowed_hosts(value)
    except ValueError as exc:
        raise InvalidInput(f"allowed_hosts: {exc}.", field="allowed_hosts") from None


def _base_url(value: object, hosts: list[str]) -> str | None:
    """A connection's base_url (None or "": none); its host must be among ``hosts``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput("base_url must be text (a URL) or null.", field="base_url")
    try:
        text = check_base_url(value)
    except ValueError as exc:
        raise InvalidInput(f"base_url: {exc}.", field="base_url") from None
    url = parse_http_url(text)
    if hosts and not AllowedHosts(hosts, "").allows(url):
        host = url.host if url.explicit_port is None else f"{url.host}:{url.port}"
        raise InvalidInput(
            f"base_url: its host {host} is not among the connection's allowed_hosts "
            f"({', '.join(hosts)}); add it to allowed_hosts too.",
            field="base_url",
        )
    return text


def _seen_by(view: ConnectionView, caller: Caller | None) -> ConnectionView:
    """Below admin, a connection's public view: what it is, not how it is configured."""
    if caller is None or caller.may(Role.admin):
        return view
    return view.model_copy(update={"config": {}, "shared_with": ()})


def _refuse_unshared(row: Connection, caller: Caller) -> None:
    if not shared_with(row.shared_with, caller):
        raise Forbidden(
            f"The connection {row.name!r} is not shared with you ({caller.user_name!r}, "
            f"{caller.role}): ask an admin to share it.",
            field="connection",
        )


def _config_dict(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("config must be an object.", field="config")
    return dict(value)


class ConnectionService:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        redirect_uri: str,
        on_change: Callable[[str], None] = lambda _id: None,
        revoke: Revoke | None = None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self.redirect_uri = redirect_uri
        self._on_change = on_change
        self._revoke = revoke
        self._usage_indexes: list[UsageIndex] = []

    def add_usage_index(self, index: UsageIndex) -> None:
        """Register something that uses connections (flows): shown as each connection's
        ``used_by``, and deleting a used connection is refused."""
        self._usage_indexes.append(index)

    def _usage(self, session: Session) -> dict[str, list[FlowUse]]:
        merged: dict[str, list[FlowUse]] = {}
        for index in self._usage_indexes:
            for ref, users in index(session).items():
                merged.setdefault(ref, []).extend(users)
        return merged

    @staticmethod
    def _users(usage: dict[str, list[FlowUse]], row: Connection) -> tuple[FlowUse, ...]:
        found = {use.id: use for ref in (row.id, row.name) for use in usage.get(ref, [])}
        return tuple(sorted(found.values(), key=lambda use: use.name))

    # -- reading -------------------------------------------------------------------------

    def list(self, caller: Caller | None = None) -> list[ConnectionView]:
        """Every connection; for a ``caller`` below admin, those shared with them, in
        their public view."""
        with self._db.session() as session:
            rows = session.scalars(select(Connection).order_by(Connection.name)).all()
            usage = self._usage(session)
            return [
                _seen_by(self._view(row, self._users(usage, row)), caller)
                for row in rows
                if caller is None or shared_with(row.shared_with, caller)
            ]

    def get(self, ref: str, caller: Caller | None = None) -> ConnectionView:
        with self._db.session() as session:
            row = self._find(session, ref)
            if caller is not None:
                _refuse_unshared(row, caller)
            return _seen_by(self._view(row, self._users(self._usage(session), row)), caller)

    def check_usable(self, refs: Iterable[str], caller: Caller) -> None:
        """Forbidden naming the first of these connections (ids or names) not shared with
        the caller; ones that do not exist are left to the flow's own checks."""
        if caller.may(Role.admin):
            return
        wanted = sorted(set(refs))
        if not wanted:
            return
        with self._db.session() as session:
            rows = session.scalars(
                select(Connection).where(
                    or_(Connection.id.in_(wanted), Connection.name.in_(wanted))
                )
            ).all()
            for row in sorted(rows, key=lambda r: r.name):
                _refuse_unshared(row, caller)

    def resolve(self, ref: str) -> Resolved | None:
        """A connection's id, version and whether a rejection is on record, by id or
        name; None if there is none."""
        with self._db.session() as session:
            row = session.execute(
                _by_ref(ref, Connection.id, Connection.version, Connection.rejected_at)
            ).first()
            return Resolved(row[0], row[1], row[2] is not None) if row else None

    def load(self, ref: str) -> LoadedConnection:
        """The connection with its secrets decrypted (for the card runtime only)."""
        with self._db.session() as session:
            row = self._find(session, ref)
            auth_type = AUTH_TYPES[row.auth_type]
            config = auth_type.config.model_validate(self._full_config(session, row))
            return LoadedConnection(
                row.id,
                row.name,
                row.version,
                row.auth_type,
                config,
                tuple(row.allowed_hosts),
                row.base_url,
            )

    # -- writing -------------------------------------------------------------------------

    def create(
        self,
        name: object,
        auth_type: object,
        config: object,
        allowed_hosts: object = None,
        base_url: object = None,
        test_request: object = None,
        shared_with: object = None,
    ) -> ConnectionView:
        """A new connection. ``allowed_hosts`` lists where its credentials may be sent
        (``api.example.com``, ``*.example.com``, with an optional ``:port``); empty: any.
        ``base_url``: where cards' relative URLs resolve (its host must be allowed).
        ``test_request``: what Test connection sends ({"method", "url"}; the url may be a
        path under ``base_url``), or None."""
        checked_name = _check_name(name)
        kind = _auth_type(auth_type)
        model = validate(kind.config, _given(kind, _config_dict(config)), "config")
        self._require_secrets(model)
        hosts = _allowed_hosts(allowed_hosts)
        base = _base_url(base_url, hosts)
        probe = _test_request(test_request, base)
        connection_id = new_id("con")
        try:
            with self._db.session() as session:
                row = Connection(
                    id=connection_id,
                    name=checked_name,
                    auth_type=kind.name,
                    allowed_hosts=hosts,
                    base_url=base,
                    shared_with=normalize_shared_with(session, shared_with),
                    status=status.initial(kind),
                    test_request=probe,
                )
                self._store_config(session, row, model)
                session.add(row)
                session.flush()
                record(
                    session,
                    "connection.created",
                    _target(row),
                    created(self._audited(session, row), hidden=_secret_keys(kind)),
                )
                # new: no flow can use it yet (one naming a deleted connection could not
                # have been saved, and a used connection cannot be deleted)
                view = self._view(row, ())
        except IntegrityError:
            raise self._duplicate(checked_name) from None
        return view

    def update(
        self,
        ref: str,
        *,
        name: object = None,
        auth_type: object = None,
        config: object = None,
        allowed_hosts: object = None,
        base_url: object = None,
        test_request: object = UNCHANGED,
        shared_with: object = None,
    ) -> ConnectionView:
        """Change a connection; secrets left out (or sent back as {"set": true}) are kept.
        ``base_url``: None keeps it, "" removes it. ``test_request`` None removes it; left
        out, it is kept.

        Sending a connection's secrets somewhere new — wider ``allowed_hosts``, another
        token or authorize URL — needs its secrets entered again in the same change, so
        that whoever may edit a connection cannot make it hand its secrets to them."""
        try:
            with self._db.session() as session:
                row = self._find(session, ref)
                audited = self._audited(session, row)
                if name is not None:
                    row.name = _check_name(name)
                if shared_with is not None:
                    row.shared_with = normalize_shared_with(session, shared_with)
                kind = AUTH_TYPES[row.auth_type]
                new_kind = _auth_type(auth_type) if auth_type is not None else kind
                patch = _given(new_kind, _config_dict(config)) if config is not None else {}
                entered = {
                    key
                    for key, value in patch.items()
                    if key in new_kind.config.secret_fields and not _kept(value)
                }
                if allowed_hosts is not None:
                    hosts = _allowed_hosts(allowed_hosts)
                    wider = widened(row.allowed_hosts, hosts)
                    if wider:
                        self._require_reentry(
                            session,
                            row,
                            entered,
                            "widening allowed_hosts (to "
                            + ", ".join("any host" if h == "*" else repr(h) for h in wider)
                            + ")",
                        )
                    row.allowed_hosts = hosts
                if base_url is not None or (allowed_hosts is not None and row.base_url):
                    row.base_url = _base_url(
                        row.base_url if base_url is None else base_url, row.allowed_hosts
                    )
                if test_request is not UNCHANGED:
                    row.test_request = _test_request(test_request, row.base_url)
                elif row.test_request and base_url is not None:
                    # a kept test request that is a path needs the base_url still there
                    _check_test_base(
                        ConnectionTestRequest.model_validate(row.test_request), row.base_url
                    )
                if config is not None or new_kind is not kind:
                    data = self._full_config(session, row) if new_kind is kind else {}
                    for key, value in patch.items():
                        if key in new_kind.config.secret_fields and _kept(value):
                            continue  # keep the stored secret
                        data[key] = value
                    model = validate(new_kind.config, data, "config")
                    self._require_secrets(model)
                    if new_kind is kind:
                        moved = [
                            f
                            for f in kind.config.destination_fields
                            if _origin(row.config.get(f)) != _origin(getattr(model, f))
                        ]
                        if moved:
                            self._require_reentry(
                                session, row, entered, f"changing {', '.join(moved)}"
                            )
                    before = self._full_config(session, row) if new_kind is kind else None
                    row.auth_type = new_kind.name
                    self._store_config(session, row, model)
                    self._after_config_change(session, row, new_kind, before, model)
                row.version += 1
                row.updated_at = utcnow()
                session.flush()
                record(
                    session,
                    "connection.updated",
                    _target(row),
                    diff(
                        audited,
                        self._audited(session, row),
                        hidden=_secret_keys(kind) | _secret_keys(new_kind),
                    ),
                    {"status": row.status},
                )
                view = self._view(row, self._users(self._usage(session), row))
        except IntegrityError:
            raise self._duplicate(str(name)) from None
        self._on_change(view.id)
        return view

    def delete(self, ref: str) -> ConnectionDeleted:
        """Delete a connection and its secrets and tokens; then, with a revocation URL,
        revoke the tokens it held at the provider (whatever the provider says, the
        connection stays deleted: the answer tells)."""
        with self._db.session() as session:
            row = self._find(session, ref)
            users = self._users(self._usage(session), row)
            if users:
                named = ", ".join(f"flow {use.name!r}" for use in users)
                raise ConnectionInUse(
                    f"Connection {row.name!r} is used by {named}; change or delete those first.",
                    field="connection",
                )
            pending = self._pending_revocation(session, row) if self._revoke else None
            record(
                session,
                "connection.deleted",
                _target(row),
                details={"revocation": "pending" if pending else "none"},
            )
            session.delete(row)
            connection_id, name = row.id, row.name
        self._on_change(connection_id)
        report = self._revoke(pending) if self._revoke and pending else None
        if report is not None:
            with self._db.session() as session:
                record(
                    session,
                    "connection.tokens_revoked"
                    if report.revoked
                    else "connection.revocation_failed",
                    Target("connection", connection_id, name),
                    details={"tokens": list(report.tokens), "error": report.error},
                )
        return ConnectionDeleted(id=connection_id, name=name, revocation=report)

    def _pending_revocation(self, session: Session, row: Connection) -> PendingRevocation | None:
        if "revocation_url" not in AUTH_TYPES[row.auth_type].config.model_fields:
            return None
        if not row.config.get("revocation_url"):
            return None
        config = AUTH_TYPES[row.auth_type].config.model_validate(self._full_config(session, row))
        token = read_token(session, self._keyring, session.get(ConnectionToken, row.id))
        return pending_revocation(row.id, row.name, config, token)

    # -- rejections (connections.rejections decides when) ---------------------------------

    def record_rejection(
        self, connection_id: str, status_code: int, at: datetime, site: CallSite
    ) -> None:
        """A card call with the connection got ``status_code`` (401 or 403) ``at``."""
        with self._db.session() as session:
            session.execute(
                update(Connection)
                .where(Connection.id == connection_id)
                .values(
                    rejected_status_code=status_code,
                    rejected_at=at,
                    rejected_run_id=site.run_id,
                    rejected_flow_id=site.flow_id,
                    rejected_card_id=site.card_id[:200] if site.card_id else None,
                )
            )

    def clear_rejection(self, connection_id: str, before: datetime) -> bool:
        """A call begun at ``before`` succeeded: a rejection recorded earlier is over."""
        with self._db.session() as session:
            result = session.execute(
                update(Connection)
                .where(
                    Connection.id == connection_id,
                    Connection.rejected_at.is_not(None),
                    Connection.rejected_at <= before,
                )
                .values(status.NO_REJECTION)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- helpers -------------------------------------------------------------------------

    def _audited(self, session: Session, row: Connection) -> dict[str, Any]:
        """What the audit log compares before and after a change. Secrets are in it only
        to tell whether they changed: ``_secret_keys`` keeps their values out of the log."""
        kind = AUTH_TYPES[row.auth_type]
        state: dict[str, Any] = {
            "name": row.name,
            "auth_type": row.auth_type,
            "allowed_hosts": list(row.allowed_hosts),
            "base_url": row.base_url,
            "shared_with": list(row.shared_with or ()),
        }
        for key, value in row.config.items():
            if key not in kind.config.secret_fields:
                state[f"config.{key}"] = value
        for key, value in self._secrets(session, row).items():
            state[f"config.{key}"] = value
        return state

    def _full_config(self, session: Session, row: Connection) -> dict[str, Any]:
        """The config as given, with its secrets: derived fields (a public key) and what
        may be shown of a secret under its name (a certificate's subject) left out."""
        kind = AUTH_TYPES[row.auth_type]
        given = _given(kind, dict(row.config))
        data = {key: value for key, value in given.items() if key not in kind.config.secret_fields}
        data.update(self._secrets(session, row))
        return data

    @staticmethod
    def _after_config_change(
        session: Session,
        row: Connection,
        kind: AuthType,
        before: dict[str, Any] | None,
        model: AuthConfig,
    ) -> None:
        """Drop tokens the new config invalidates, and say what the user must do
        (``before``: the config it replaces, None when the auth type changed)."""
        after = model.model_dump()
        changed: list[str] | None = None
        if kind.user_authorizes and before is not None:
            changed = [name for name in kind.grant_fields if before.get(name) != after.get(name)]
        elif before is not None and before == after:
            return
        if not status.config_changed(row, kind, changed):
            return
        token = session.get(ConnectionToken, row.id)
        if token is not None:
            session.delete(token)

    def _find(self, session: Session, ref: str) -> Connection:
        row: Connection | None = session.scalars(_by_ref(ref, Connection)).first()
        if row is None:
            raise ConnectionNotFound(
                f"There is no connection {ref!r} (give its id or its name).", field="connection"
            )
        return row

    def _secrets(self, session: Session, row: Connection) -> dict[str, Any]:
        if row.secrets_enc is None:
            return {}
        plain = self._keyring.decrypt(session, row.secrets_enc, secrets_aad(row.id))
        data: dict[str, Any] = json.loads(plain)
        return data

    def _store_config(self, session: Session, row: Connection, model: AuthConfig) -> None:
        # what may be shown of a secret (a certificate's subject) is kept under its name
        row.config = {**model.public(), **model.secret_summaries()}
        secrets = model.secrets()
        row.secret_fields = sorted(secrets)
        if secrets:
            blob, key_id = self._keyring.encrypt(
                session, json.dumps(secrets).encode(), secrets_aad(row.id)
            )
            row.secrets_enc, row.secrets_key_id = blob, key_id
        else:
            row.secrets_enc, row.secrets_key_id = None, None

    @staticmethod
    def _require_reentry(session: Session, row: Connection, entered: set[str], why: str) -> None:
        """Refuse ``why`` unless every secret the connection holds is given anew."""
        missing = [name for name in row.secret_fields if name not in entered]
        if missing:
            raise InvalidInput(
                f"config.{missing[0]}: {why} sends this connection's secrets somewhere new, so "
                f"enter {'it' if len(missing) == 1 else 'them'} again in the same change "
                f"({', '.join('config.' + m for m in missing)}).",
                field=f"config.{missing[0]}",
            )

    @staticmethod
    def _require_secrets(model: AuthConfig) -> None:
        """Each secret the config's rules need (applies_when, required_when) is given, then
        the checks only a save makes (a client certificate valid now, its key its own)."""
        for name in model.needed_secrets():
            if not getattr(model, name):
                raise InvalidInput(model.missing_message(name), field=f"config.{name}")
        model.check_before_save()

    @staticmethod
    def _duplicate(name: str) -> Conflict:
        return Conflict(f"A connection named {name!r} already exists.", field="name")

    def _view(self, row: Connection, used_by: tuple[FlowUse, ...]) -> ConnectionView:
        config: dict[str, Any] = dict(row.config)
        secret_fields = AUTH_TYPES[row.auth_type].config.secret_fields
        for secret in secret_fields:
            if secret in CLIENT_TLS_SECRET_FIELDS and secret not in row.secret_fields:
                continue  # mutual TLS shows only where it is used
            summary = row.config.get(secret)
            shown = summary if isinstance(summary, dict) and secret in row.secret_fields else {}
            config[secret] = {"set": secret in row.secret_fields, **shown}
        own_secrets = [f for f in secret_fields if f not in CLIENT_TLS_SECRET_FIELDS]
        warnings = (
            (
                "allowed_hosts is empty: this connection's credentials go to any host a card "
                "names. List the hosts of the service it is for.",
            )
            if (own_secrets or row.secret_fields) and not row.allowed_hosts
            else ()
        )
        return ConnectionView(
            id=row.id,
            name=row.name,
            auth_type=row.auth_type,
            config=config,
            status=row.status,
            last_error=row.last_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            redirect_uri=(self.redirect_uri if AUTH_TYPES[row.auth_type].user_authorizes else None),
            allowed_hosts=tuple(row.allowed_hosts),
            base_url=row.base_url,
            shared_with=tuple(row.shared_with if row.shared_with is not None else ("everyone",)),
            warnings=warnings,
            used_by=used_by,
            rejected=self._rejection(row, used_by),
            test_request=(
                ConnectionTestRequest.model_validate(row.test_request) if row.test_request else None
            ),
        )

    @staticmethod
    def _rejection(row: Connection, used_by: tuple[FlowUse, ...]) -> Rejection | None:
        if row.rejected_at is None or row.rejected_status_code is None:
            return None
        flow_name = next((use.name for use in used_by if use.id == row.rejected_flow_id), None)
        return Rejection(
            status_code=row.rejected_status_code,
            at=row.rejected_at,
            run_id=row.rejected_run_id,
            flow_id=row.rejected_flow_id,
            flow_name=flow_name,
            card_id=row.rejected_card_id,
        )
