"""Recording a change: one ``audit_events`` row, added to the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cardflow.audit.actor import Actor, current_actor
from cardflow.store.models import ApiToken, AuditEvent

# A value longer than this is cut; one bigger than a short list of short strings is
# only said to have changed (the audit log says what changed, not the whole document).
MAX_VALUE_CHARS = 200
MAX_LIST_ITEMS = 20
MAX_DETAIL_CHARS = 300

Change = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What a change was made to: its type (connection, flow, api_token, web_session,
    keys), its id and its name at the time."""

    type: str
    id: str | None = None
    name: str | None = None


def shown(value: Any) -> tuple[bool, Any]:
    """(True, the value as the log keeps it) for a small plain value; (False, None) for
    anything bigger, which the log only says changed."""
    if value is None or isinstance(value, bool | int | float):
        return True, value
    if isinstance(value, str):
        return True, cut(value, MAX_VALUE_CHARS)
    if (
        isinstance(value, list | tuple)
        and len(value) <= MAX_LIST_ITEMS
        and all(isinstance(item, str) and len(item) <= MAX_VALUE_CHARS for item in value)
    ):
        return True, list(value)
    return False, None


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def changed(field: str) -> Change:
    """A change said without its values (a secret, or something too big to show)."""
    return {"field": field, "changed": True}


def field_change(field: str, old: Any, new: Any) -> Change:
    """A non-secret field's old and new values (or only that it changed, if too big)."""
    old_ok, old_shown = shown(old)
    new_ok, new_shown = shown(new)
    if old_ok and new_ok:
        return {"field": field, "old": old_shown, "new": new_shown}
    return changed(field)


def diff(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    hidden: Collection[str] = (),
    prefix: str = "",
) -> list[Change]:
    """The fields that differ; a ``hidden`` one (a secret, or what may hold one) only as
    changed, never its value."""
    changes: list[Change] = []
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        name = f"{prefix}{key}"
        changes.append(changed(name) if key in hidden else field_change(name, old, new))
    return changes


def created(after: Mapping[str, Any], *, hidden: Collection[str] = ()) -> list[Change]:
    """A new thing's fields: the values of those not ``hidden``, the rest as set."""
    given = {key: value for key, value in after.items() if value not in (None, "", [], {})}
    return diff({}, given, hidden=hidden)


def _actor_name(session: Session, actor: Actor) -> str | None:
    if actor.name is None and actor.kind == "api_token" and actor.id is not None:
        token = session.get(ApiToken, actor.id)
        return token.name if token is not None else None
    return actor.name


def record(
    session: Session,
    action: str,
    target: Target | None = None,
    changes: list[Change] | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    actor: Actor | None = None,
) -> None:
    """Add an audit entry for ``action`` to the session's transaction (committed, or
    rolled back, with the change itself). ``actor``: who, if not :data:`current_actor`."""
    who = actor or current_actor.get()
    session.add(
        AuditEvent(
            action=action,
            actor_kind=who.kind,
            actor_id=who.id,
            actor_name=_actor_name(session, who),
            address=cut(who.address, 255) if who.address else None,
            user_id=who.user_id,
            user_name=cut(who.user_name, 200) if who.user_name else None,
            target_type=target.type if target else None,
            target_id=target.id if target else None,
            target_name=cut(target.name, 200) if target and target.name else None,
            changes=changes or [],
            details={
                key: cut(value, MAX_DETAIL_CHARS) if isinstance(value, str) else value
                for key, value in (details or {}).items()
            },
        )
    )
