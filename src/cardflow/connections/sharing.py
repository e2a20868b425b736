"""Who may use a connection in cards: everyone, or named roles and users.

A connection's ``shared_with`` is a list of entries: ``everyone``, ``role:<role>`` (that
role and the roles above it) and ``user:<user id>``. Admins and owners may use every
connection, whatever it says; a builder only the ones shared with them, and never sees
more of one than its public view (no config).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardflow.access.roles import Caller, Role
from cardflow.errors import InvalidInput
from cardflow.store.models import User

EVERYONE = "everyone"
MAX_ENTRIES = 100


def normalize_shared_with(session: Session, value: object) -> list[str]:
    """``shared_with`` as given (a list; users by name or id) -> as stored (users by id)."""
    if value is None:
        return [EVERYONE]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidInput(
            'shared_with is a list: "everyone", "role:<role>" or "user:<name>" entries.',
            field="shared_with",
        )
    if len(value) > MAX_ENTRIES:
        raise InvalidInput(f"shared_with holds at most {MAX_ENTRIES} entries.", field="shared_with")
    entries: list[str] = []
    for item in value:
        text = str(item).strip()
        kind, colon, rest = text.partition(":")
        if text == EVERYONE:
            entry = EVERYONE
        elif colon and kind == "role":
            entry = f"role:{Role.parse(rest, 'shared_with')}"
        elif colon and kind == "user" and rest.strip():
            ref = rest.strip()
            user_id = session.scalars(
                select(User.id).where((User.id == ref) | (User.name == ref))
            ).first()
            if user_id is None:
                raise InvalidInput(f"shared_with: there is no user {ref!r}.", field="shared_with")
            entry = f"user:{user_id}"
        else:
            raise InvalidInput(
                f'shared_with: {text!r} is not "everyone", "role:<role>" or "user:<name>".',
                field="shared_with",
            )
        if entry not in entries:
            entries.append(entry)
    return entries


def shared_with(entries: Iterable[str], caller: Caller) -> bool:
    """Whether the caller may use a connection with these ``shared_with`` entries."""
    if caller.may(Role.admin):
        return True
    for entry in entries:
        kind, _, rest = entry.partition(":")
        if entry == EVERYONE:
            return True
        if kind == "role" and rest in Role.__members__ and caller.may(Role(rest)):
            return True
        if kind == "user" and rest == caller.user_id:
            return True
    return False
