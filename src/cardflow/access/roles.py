"""Roles: what a user (and each of their API tokens) may do.

``viewer`` reads flows and run history; ``builder`` also edits, runs and tests flows and
uses the connections shared with them; ``admin`` may do everything but manage users;
``owner`` may do everything. Each role includes the ones below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cardflow.errors import InvalidInput


class Role(StrEnum):
    viewer = "viewer"
    builder = "builder"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, value: object, field: str = "role") -> Role:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidInput(
                f"{field}: {value!r} is not a role; choose one of {', '.join(ROLE_NAMES)}.",
                field=field,
            ) from None


_RANKS = {Role.viewer: 0, Role.builder: 1, Role.admin: 2, Role.owner: 3}
ROLE_NAMES = tuple(role.value for role in Role)


def narrower(first: Role, second: Role | None) -> Role:
    """The lesser of two roles (a token's role never exceeds its user's)."""
    if second is None:
        return first
    return first if first.rank <= second.rank else second


@dataclass(frozen=True)
class Caller:
    """Who is calling cardflow: a user, through the web app or one of their API tokens,
    with the role that applies to this request."""

    user_id: str
    user_name: str
    role: Role
    token_name: str | None = None  # None: the web app (a session)
    # The API token's or web session's id: the audit log's actor (cardflow.audit.actor)
    via_id: str | None = None

    def may(self, needed: Role) -> bool:
        return self.role.allows(needed)
