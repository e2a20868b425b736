"""Flows: create, read, replace, delete, client tokens, and the alias lookup for /invoke."""

from __future__ import annotations

import builtins
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardflow.access.actor import saved_by
from cardflow.audit.actor import Actor
from cardflow.audit.record import Target, changed, created, record
from cardflow.audit.record import diff as audit_diff
from cardflow.cache import Recent
from cardflow.connections.service import ConnectionService, FlowUse
from cardflow.errors import Conflict, InvalidInput, NotFound
from cardflow.flows.model import (
    MAX_FLOW_BYTES,
    CardStep,
    FlowDocument,
    FlowSnapshot,
    check_document_size,
    load_document,
    parse_text,
    walk,
)
from cardflow.flows.validate import check_flow
from cardflow.flows.versions import (
    FlowVersionDiff,
    FlowVersionNotFound,
    FlowVersionSummary,
    FlowVersionView,
    clean_note,
    diff,
)
from cardflow.jsondata import DEFAULT_MAX_DEPTH, exceeds
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, client_token_aad
from cardflow.store.models import Flow, FlowTestState, FlowVersion, Run, new_id, utcnow
from cardflow.views import Timestamp, View


class FlowNotFound(NotFound):
    type = "flow_not_found"


class _FlowId(View):
    id: str


class FlowTestData(View):
    """What the builder keeps of its testing of a flow."""

    sample: str = Field(description="The test data (the trigger body), as typed.")
    results: dict[str, Any] = Field(
        description="Card id -> its last Test this card result, or outputs typed for testing."
    )
    updated_at: Timestamp | None


class LastRun(View):
    """A flow's newest run, as its list shows it."""

    id: str
    status: str
    started_at: Timestamp


class FlowView(FlowDocument, _FlowId):  # bases this way round: "id" comes first
    """A stored flow: its id, its document's fields, then what cardflow adds."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    invoke_url: str | None = Field(description="API endpoint: the URL that runs the flow.")
    client_token: str | None = Field(
        description="client_token security: the token its callers send (null otherwise)."
    )
    version: int = Field(description="One more with every change (client token included).")
    saved_version: int = Field(
        description="The number of its newest saved version (its version history); runs "
        "record the one they ran as flow_version."
    )
    created_at: Timestamp
    updated_at: Timestamp
    last_run: LastRun | None = Field(
        default=None, description="Its newest run (card tests aside), or null if it never ran."
    )

    @property
    def document(self) -> FlowDocument:
        """The flow document alone (as exported and run)."""
        fields = {name: getattr(self, name) for name in FlowDocument.model_fields}
        return FlowDocument.model_construct(**fields)


def _connections_in(steps: list[CardStep]) -> set[str]:
    return {at.step.connection for at in walk(steps) if at.step.connection}


class FlowService:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        connections: ConnectionService,
        *,
        public_url: str,
        cache_seconds: float,
        max_flow_bytes: int = MAX_FLOW_BYTES,
        max_nesting_depth: int = DEFAULT_MAX_DEPTH,
        max_versions: int = 200,
    ) -> None:
        self.max_versions = max_versions
        self.max_flow_bytes = max_flow_bytes
        self.max_nesting_depth = max_nesting_depth
        self._db = db
        self._keyring = keyring
        self._connections = connections
        self._public_url = public_url.rstrip("/")
        # alias -> (snapshot, the flow's version when it was taken)
        self._by_alias: Recent[str, tuple[FlowSnapshot, int]] = Recent(cache_seconds)
        connections.add_usage_index(self.connection_usage)

    # -- reading -------------------------------------------------------------------------

    def list(self) -> list[FlowView]:
        with self._db.session() as session:
            rows = session.scalars(select(Flow).order_by(Flow.name)).all()
            latest = _last_runs(session, [row.id for row in rows])
            return [self._view(session, row, latest.get(row.id)) for row in rows]

    def get(self, ref: str) -> FlowView:
        with self._db.session() as session:
            row = self._find(session, ref)
            return self._view(session, row, _last_runs(session, [row.id]).get(row.id))

    def id_of(self, ref: str) -> str:
        """The id of the flow with this id or name (FlowNotFound if none)."""
        with self._db.session() as session:
            return self._find(session, ref).id

    def snapshot(self, ref: str) -> FlowSnapshot:
        view = self.get(ref)
        return FlowSnapshot(
            view.id, view.name, view.document, view.client_token, view.saved_version
        )

    def by_alias_cached(self, alias: str) -> FlowSnapshot | None:
        """The flow at /invoke/{alias} if it was checked recently; no I/O (None: ask
        :meth:`by_alias`)."""
        cached = self._by_alias.fresh(alias)
        return cached[0] if cached is not None else None

    def by_alias(self, alias: str) -> FlowSnapshot | None:
        """The enabled flow answering at /invoke/{alias} (cached; re-checked every few s)."""
        cached = self._by_alias.fresh(alias)
        if cached is not None:
            return cached[0]
        cached = self._by_alias.stale(alias)
        with self._db.session() as session:
            row = session.scalars(select(Flow).where(Flow.alias == alias)).first()
            if row is None or not row.enabled:
                self._by_alias.forget(alias)
                return None
            if cached is not None and cached[1] == row.version:
                snapshot = cached[0]
            else:
                view = self._view(session, row)
                snapshot = FlowSnapshot(
                    view.id, view.name, view.document, view.client_token, view.saved_version
                )
        self._by_alias.put(alias, (snapshot, row.version))
        return snapshot

    def connection_usage(self, session: Session) -> dict[str, builtins.list[FlowUse]]:
        """Each connection ref the flows' cards write (id or name) -> the flows using it."""
        usage: dict[str, builtins.list[FlowUse]] = {}
        for row in session.scalars(select(Flow).order_by(Flow.name)):
            document = FlowDocument.model_validate(row.document)
            for ref in _connections_in(document.cards):
                usage.setdefault(ref, []).append(FlowUse(id=row.id, name=row.name))
        return usage

    # -- writing -------------------------------------------------------------------------

    def create(
        self,
        data: Any,
        *,
        actor: Actor | None = None,
        note: str | None = None,
        _action: str = "flow.created",
    ) -> FlowView:
        """Save a new flow; its document is its version 1 (by ``actor``, with ``note``)."""
        note = clean_note(note)
        document = self._checked(data)
        flow_id = new_id("flw")
        with self._db.session() as session:
            self._check_unique(session, document, None)
            row = Flow(
                id=flow_id,
                name=document.name,
                alias=self._alias(document),
                enabled=document.enabled,
                document=document.model_dump(mode="json"),
            )
            self._ensure_token(session, row, document)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(
                    "A flow with this name or alias already exists.", field="name"
                ) from None
            self._keep_version(session, row, actor, note)
            session.flush()
            summary = _audited(row.document)
            record(session, _action, _target(row), created(summary, hidden=_opaque(summary)))
            return self._view(session, row)

    def replace(
        self,
        ref: str,
        data: Any,
        *,
        actor: Actor | None = None,
        note: str | None = None,
        always_keep: bool = False,
        _action: str = "flow.updated",
    ) -> FlowView:
        """Save a flow's new document: a new version when the document changed (or
        ``always_keep``), by ``actor`` with ``note``."""
        note = clean_note(note)
        document = self._checked(data)
        with self._db.session() as session:
            row = self._find(session, ref)
            before = _audited(row.document)
            self._check_unique(session, document, row.id)
            stored = document.model_dump(mode="json")
            changed = stored != row.document
            row.name = document.name
            row.alias = self._alias(document)
            row.enabled = document.enabled
            row.document = stored
            row.version += 1
            row.updated_at = utcnow()
            self._ensure_token(session, row, document)
            if changed or always_keep:
                self._keep_version(session, row, actor, note)
            session.flush()
            after = _audited(row.document)
            hidden = _opaque(before) | _opaque(after)
            record(session, _action, _target(row), audit_diff(before, after, hidden=hidden))
            view = self._view(session, row, _last_runs(session, [row.id]).get(row.id))
        self._forget()
        return view

    def import_document(
        self,
        data: Any,
        *,
        replace: bool = False,
        as_copy: bool = False,
        connections: Mapping[str, str] | None = None,
        actor: Actor | None = None,
        note: str | None = None,
    ) -> FlowView:
        """Create a flow from an imported document, replace the flow of the same name, or
        (``as_copy``) create it beside that one under a free name and alias.

        ``connections`` maps connections as the file names them to existing ones (id or
        name): its cards, nested ones too, name those instead. A file naming connections
        that are not here, unmapped, raises MissingConnections listing them all."""
        if connections:
            if not isinstance(data, FlowDocument):
                data = load_document(
                    data, max_bytes=self.max_flow_bytes, max_depth=self.max_nesting_depth
                )
            data = data.with_connections(self._mapped_names(data, connections))
        document = self._checked(data)
        if as_copy:
            return self.create(
                self._as_copy(document), actor=actor, note=note, _action="flow.imported"
            )
        existing = next((v for v in self.list() if v.name == document.name), None)
        if existing is None:
            return self.create(document, actor=actor, note=note, _action="flow.imported")
        if not replace:
            raise Conflict(
                f"A flow named {document.name!r} already exists ({existing.id}); import it "
                "as a replacement of that flow, or as a copy beside it.",
                field="name",
            )
        return self.replace(existing.id, document, actor=actor, note=note, _action="flow.imported")

    def _mapped_names(
        self, document: FlowDocument, connections: Mapping[str, str]
    ) -> dict[str, str]:
        """Each mapping's target as the name of the existing connection it gives (by id or
        name), so an imported flow names its connections as the builder writes them. A
        mapping for a connection no card names is refused (a typo would go unnoticed)."""
        named = sorted({at.step.connection for at in document.walk() if at.step.connection})
        for name in connections:
            if name not in named:
                listed = ", ".join(repr(each) for each in named) or "none"
                raise InvalidInput(
                    f"connections.{name}: no card of the flow names the connection {name!r} "
                    f"(its cards name: {listed}).",
                    field=f"connections.{name}",
                )
        by_ref: dict[str, str] = {}
        for view in self._connections.list():
            by_ref.setdefault(view.name, view.name)
            by_ref[view.id] = view.name  # an id wins over a name that looks like one
        names: dict[str, str] = {}
        for name, ref in connections.items():
            if ref not in by_ref:
                raise InvalidInput(
                    f"connections.{name}: there is no connection {ref!r} to use for "
                    f"{name!r} (give an existing connection's name or id).",
                    field=f"connections.{name}",
                )
            names[name] = by_ref[ref]
        return names

    def _as_copy(self, document: FlowDocument) -> FlowDocument:
        """The document under the first free name "X (copy)", "X (copy 2)"… and, for an API
        endpoint whose alias is taken, the first free "alias-copy", "alias-copy-2"…"""
        with self._db.session() as session:
            names = set(session.scalars(select(Flow.name)))
            aliases = {alias for alias in session.scalars(select(Flow.alias)) if alias}
        changes: dict[str, Any] = {}
        if document.name in names:
            changes["name"] = _first_free(
                names, f"{document.name} (copy)", " (copy {})", document.name
            )
        alias = document.trigger.alias if document.trigger.type == "api_endpoint" else None
        if alias and alias in aliases:
            changes["trigger"] = document.trigger.model_copy(
                update={"alias": _first_free(aliases, f"{alias}-copy", "-copy-{}", alias)}
            )
        return document.model_copy(update=changes) if changes else document

    def set_enabled(
        self, ref: str, enabled: bool, *, actor: Actor | None = None, note: str | None = None
    ) -> FlowView:
        view = self.get(ref)
        data = view.document.model_dump(mode="json")
        data["enabled"] = enabled
        action = "flow.enabled" if enabled else "flow.disabled"
        return self.replace(view.id, data, actor=actor, note=note, _action=action)

    # -- version history -------------------------------------------------------------------

    def versions(
        self, ref: str, *, before: int | None = None, limit: int = 50
    ) -> builtins.list[FlowVersionSummary]:
        """A flow's saved versions, newest first; ``before``: those older than that number."""
        with self._db.session() as session:
            row = self._find(session, ref)
            query = select(
                FlowVersion.number, FlowVersion.actor, FlowVersion.note, FlowVersion.created_at
            ).where(FlowVersion.flow_id == row.id)
            if before is not None:
                query = query.where(FlowVersion.number < before)
            found = session.execute(query.order_by(FlowVersion.number.desc()).limit(limit))
            return [
                FlowVersionSummary(number=number, actor=actor, note=note, created_at=at)
                for number, actor, note, at in found
            ]

    def version(self, ref: str, number: int) -> FlowVersionView:
        """One saved version with its document (FlowVersionNotFound if not kept)."""
        with self._db.session() as session:
            row = self._find(session, ref)
            kept = session.get(FlowVersion, (row.id, number))
            if kept is None:
                raise FlowVersionNotFound(
                    f"Flow {row.name!r} has no version {number} (it was never saved so, or "
                    "was dropped as one of its oldest: CARDFLOW_MAX_FLOW_VERSIONS).",
                    field="version",
                )
            return FlowVersionView(
                number=kept.number,
                actor=kept.actor,
                note=kept.note,
                created_at=kept.created_at,
                document=kept.document,
            )

    def diff(
        self, ref: str, old: int, new: int, fmt: Literal["yaml", "json"] = "yaml"
    ) -> FlowVersionDiff:
        """Two saved versions, exported, compared line by line."""
        return diff(self.version(ref, old), self.version(ref, new), fmt)

    def restore(
        self, ref: str, number: int, *, actor: Actor | None = None, note: str | None = None
    ) -> FlowView:
        """Save a kept version's document as the flow's new version (checked as any save)."""
        kept = self.version(ref, number)
        return self.replace(
            ref,
            kept.document,
            actor=actor,
            note=note if note and note.strip() else f"Restored from version {number}",
            always_keep=True,
        )

    def regenerate_token(self, ref: str) -> FlowView:
        with self._db.session() as session:
            row = self._find(session, ref)
            document = FlowDocument.model_validate(row.document)
            if (
                document.trigger.type != "api_endpoint"
                or document.trigger.security != "client_token"
            ):
                raise InvalidInput(
                    "Only API-endpoint flows with client_token security have a client token.",
                    field="trigger.security",
                )
            row.client_token_enc = None
            self._ensure_token(session, row, document)
            row.version += 1
            row.updated_at = utcnow()
            session.flush()
            record(session, "flow.token_regenerated", _target(row), [changed("client_token")])
            view = self._view(session, row, _last_runs(session, [row.id]).get(row.id))
        self._forget()
        return view

    def delete(self, ref: str) -> None:
        with self._db.session() as session:
            row = self._find(session, ref)
            session.execute(delete(FlowTestState).where(FlowTestState.flow_id == row.id))
            session.execute(delete(FlowVersion).where(FlowVersion.flow_id == row.id))
            record(session, "flow.deleted", _target(row))
            session.delete(row)
        self._forget()

    def _keep_version(
        self, session: Session, row: Flow, actor: Actor | None, note: str | None
    ) -> None:
        """The row's document as its next saved version; the oldest past max_versions go."""
        row.saved_version = (row.saved_version or 0) + 1
        session.add(
            FlowVersion(
                flow_id=row.id,
                number=row.saved_version,
                document=row.document,
                actor=saved_by(actor),
                note=note,
                created_at=row.updated_at,
            )
        )
        session.execute(
            delete(FlowVersion).where(
                FlowVersion.flow_id == row.id,
                FlowVersion.number <= row.saved_version - self.max_versions,
            )
        )

    # -- the builder's testing --------------------------------------------------------------

    def test_state(self, ref: str) -> FlowTestData:
        """The builder's test data and each card's last Test result for a flow."""
        with self._db.session() as session:
            row = self._find(session, ref)
            kept = session.get(FlowTestState, row.id)
            if kept is None:
                return FlowTestData(sample="", results={}, updated_at=None)
            return FlowTestData(**kept.data, updated_at=kept.updated_at)

    def save_test_state(self, ref: str, sample: str, results: dict[str, Any]) -> FlowTestData:
        """Keep the builder's test data and last results (as the builder showed them:
        redacted) until the flow is deleted; bounded by CARDFLOW_MAX_FLOW_BYTES x 4."""
        data = {"sample": sample, "results": results}
        limit = 4 * self.max_flow_bytes
        if exceeds(data, limit):
            raise InvalidInput(
                f"The test data and results are larger than {limit:,} bytes; test with "
                "smaller answers, or clear some cards' results.",
                field="results",
            )
        with self._db.session() as session:
            row = self._find(session, ref)
            kept = session.get(FlowTestState, row.id)
            if kept is None:
                kept = FlowTestState(flow_id=row.id, data=data)
                session.add(kept)
            kept.data, kept.updated_at = data, utcnow()
            session.flush()
            return FlowTestData(**data, updated_at=kept.updated_at)

    # -- helpers -------------------------------------------------------------------------

    def parse(self, text: str, *, filename: str = "") -> FlowDocument:
        """A flow document from the text of a YAML or JSON flow file."""
        return load_document(
            parse_text(text, filename=filename, max_chars=4 * self.max_flow_bytes),
            max_bytes=self.max_flow_bytes,
            max_depth=self.max_nesting_depth,
        )

    def _checked(self, data: Any) -> FlowDocument:
        limits = {"max_bytes": self.max_flow_bytes, "max_depth": self.max_nesting_depth}
        if isinstance(data, FlowDocument):
            document = data
            check_document_size(document.model_dump(mode="json"), **limits)
        else:
            document = load_document(data, **limits)
        check_flow(document, lambda ref: self._connections.resolve(ref) is not None)
        return document

    @staticmethod
    def _alias(document: FlowDocument) -> str | None:
        return document.trigger.alias if document.trigger.type == "api_endpoint" else None

    def _check_unique(self, session: Session, document: FlowDocument, own_id: str | None) -> None:
        same_name = session.scalars(select(Flow.id).where(Flow.name == document.name)).first()
        if same_name is not None and same_name != own_id:
            raise Conflict(f"A flow named {document.name!r} already exists.", field="name")
        alias = self._alias(document)
        if alias is not None:
            same_alias = session.execute(
                select(Flow.id, Flow.name).where(Flow.alias == alias)
            ).first()
            if same_alias is not None and same_alias.id != own_id:
                raise Conflict(
                    f"Flow {same_alias.name!r} ({same_alias.id}) already answers at "
                    f"/invoke/{alias}; choose another alias.",
                    field="trigger.alias",
                )

    def _ensure_token(self, session: Session, row: Flow, document: FlowDocument) -> None:
        wants = (
            document.trigger.type == "api_endpoint" and document.trigger.security == "client_token"
        )
        if not wants:
            row.client_token_enc = row.client_token_key_id = None
            return
        if row.client_token_enc is None:
            token = "ct_" + secrets.token_urlsafe(32)
            row.client_token_enc, row.client_token_key_id = self._keyring.encrypt(
                session, token.encode(), client_token_aad(row.id)
            )

    def _find(self, session: Session, ref: str) -> Flow:
        row = session.scalars(
            select(Flow).where(or_(Flow.id == ref, Flow.name == ref)).limit(1)
        ).first()
        if row is None:
            raise FlowNotFound(f"There is no flow {ref!r} (give its id or name).", field="flow")
        return row

    def _view(self, session: Session, row: Flow, last_run: LastRun | None = None) -> FlowView:
        token = None
        if row.client_token_enc is not None:
            token = self._keyring.decrypt(
                session, row.client_token_enc, client_token_aad(row.id)
            ).decode()
        invoke_url = f"{self._public_url}/invoke/{row.alias}" if row.alias else None
        return FlowView.model_validate(
            {
                **row.document,
                "id": row.id,
                "invoke_url": invoke_url,
                "client_token": token,
                "version": row.version,
                "saved_version": row.saved_version,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "last_run": last_run,
            }
        )

    def _forget(self) -> None:
        self._by_alias.clear()


def _target(row: Flow) -> Target:
    return Target("flow", row.id, row.name)


# A flow's fields the audit log shows the values of; the rest (its cards, whose inputs
# may hold a pasted secret) it only says changed.
_SHOWN = frozenset({"name", "description", "enabled", "save_data"})


def _audited(document: dict[str, Any]) -> dict[str, Any]:
    """A stored flow document, flattened one level for the audit log (trigger.alias…)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "trigger" and isinstance(value, dict):
            flat.update({f"trigger.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _opaque(flat: dict[str, Any]) -> set[str]:
    return {key for key in flat if key not in _SHOWN and not key.startswith("trigger.")}


def _first_free(taken: set[str], first: str, then: str, base: str) -> str:
    if first not in taken:
        return first
    number = 2
    while f"{base}{then.format(number)}" in taken:
        number += 1
    return f"{base}{then.format(number)}"


def _last_runs(session: Session, flow_ids: builtins.list[str]) -> dict[str, LastRun]:
    """Each flow's newest run (card tests aside), in one query."""
    if not flow_ids:
        return {}
    newest = (
        select(Run.flow_id, func.max(Run.started_at).label("at"))
        .where(Run.flow_id.in_(flow_ids), Run.trigger != "card_test")
        .group_by(Run.flow_id)
        .subquery()
    )
    found = session.execute(
        select(Run.flow_id, Run.id, Run.status, Run.started_at).join(
            newest, and_(Run.flow_id == newest.c.flow_id, Run.started_at == newest.c.at)
        )
    )
    return {
        flow_id: LastRun(id=run_id, status=status, started_at=at)
        for flow_id, run_id, status, at in found
        if flow_id is not None
    }


def token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of client tokens."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
