"""API tokens for /api/v1: random, shown once, stored as SHA-256 hashes.

Each token belongs to a user and acts with that user's role, or a narrower one chosen when
it was made: at each request the lesser of the two, so a demoted user's tokens are
demoted too."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardflow.access.hashing import hash_token
from cardflow.access.roles import Caller, Role, narrower
from cardflow.access.users import UserService, find_user
from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.cache import Recent
from cardflow.errors import Conflict, InvalidInput, NotFound, Unauthorized
from cardflow.store.db import Database
from cardflow.store.models import ApiToken, User
from cardflow.views import Timestamp, View

V = TypeVar("V")

__all__ = ["ApiTokenService", "ApiTokenView", "RecentChecks", "hash_token"]

PREFIX = "cf_"
CACHE_SECONDS = 5.0


class RecentChecks(Recent[str, V]):
    """Tokens found in the database in the last few seconds: hash -> who they are.

    Spares a database read per request; a token revoked (or a session ended) by another
    process stops working here within ``seconds``."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        super().__init__(seconds)

    def lookup(self, token: str | None) -> V:
        """What the token was found to be, if checked recently; LookupError means ask the
        database."""
        if token:
            found = self.fresh(hash_token(token))
            if found is not None:
                return found
        raise LookupError


class ApiTokenView(View):
    """An API token as listed: never the token itself (only its hash is stored)."""

    id: str
    name: str
    created_at: Timestamp
    user_id: str
    user_name: str
    role: Role | None = None  # None: its user's role


def _token_view(row: ApiToken, user: User) -> ApiTokenView:
    return ApiTokenView(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        user_id=user.id,
        user_name=user.name,
        role=Role(row.role) if row.role else None,
    )


@dataclass
class ApiTokenService:
    db: Database
    audit: AuditLog | None = None  # where failed token checks are noted (bounded)

    def __post_init__(self) -> None:
        # hash -> (token id, when checked); re-checked after a few seconds so a token
        # revoked by another process stops working quickly.
        self.checked: RecentChecks[Caller] = RecentChecks()

    def create(
        self, name: str, *, user: str | None = None, role: Role | str | None = None
    ) -> tuple[str, str]:
        """A new token for ``user`` (name or id; default: the owner), with their role or the
        narrower ``role``: returns (token id, the token itself, shown only now)."""
        name = (name or "").strip()
        if not name:
            raise InvalidInput("A token needs a name (--name).", field="name")
        wanted = Role.parse(role) if role is not None else None
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.session() as session:
                owner = find_user(session, user) if user else UserService.owner_row(session)
                if wanted is not None and not Role(owner.role).allows(wanted):
                    raise InvalidInput(
                        f"A token cannot have a wider role than its user: {owner.name!r} is "
                        f"{owner.role}.",
                        field="role",
                    )
                row = ApiToken(
                    name=name,
                    token_hash=hash_token(token),
                    user_id=owner.id,
                    role=wanted.value if wanted is not None else None,
                )
                session.add(row)
                session.flush()
                token_id = row.id
                record(
                    session,
                    "api_token.created",
                    Target("api_token", row.id, name),
                    details=_token_details(row, owner),
                )
        except IntegrityError:
            raise Conflict(f"A token named {name!r} already exists.", field="name") from None
        return token_id, token

    def list(self) -> list[ApiTokenView]:
        with self.db.session() as session:
            rows = session.execute(
                select(ApiToken, User)
                .join(User, ApiToken.user_id == User.id)
                .order_by(ApiToken.name)
            ).all()
            return [_token_view(token, user) for token, user in rows]

    def revoke(self, name_or_id: str) -> None:
        with self.db.session() as session:
            row = session.scalars(
                select(ApiToken).where((ApiToken.id == name_or_id) | (ApiToken.name == name_or_id))
            ).first()
            if row is None:
                raise NotFound(f"There is no API token {name_or_id!r}.", field="name")
            user = session.get(User, row.user_id)
            record(
                session,
                "api_token.revoked",
                Target("api_token", row.id, row.name),
                details=_token_details(row, user),
            )
            session.delete(row)
        self.checked.clear()

    def authenticate_cached(self, token: str | None) -> Caller:
        """Who the token is if it was checked recently; LookupError means ask the database."""
        return self.checked.lookup(token)

    def authenticate(self, token: str | None) -> Caller:
        """Who the token acts for, with which role; or Unauthorized."""
        if not token:
            raise Unauthorized(
                "Send an API token as 'Authorization: Bearer <token>' "
                "(create one with: cardflow token create --name NAME)."
            )
        digest = hash_token(token)
        known = self.checked.fresh(digest)
        if known is not None:
            return known
        with self.db.session() as session:
            found = _token_and_user(session, digest)
            if found is not None and hmac.compare_digest(found[0].token_hash, digest):
                row, user = found
                caller: Caller | None = Caller(
                    user_id=user.id,
                    user_name=user.name,
                    role=narrower(Role(user.role), Role(row.role) if row.role else None),
                    token_name=row.name,
                    via_id=row.id,
                )
            else:
                caller = None
        if caller is None:
            self.checked.forget(digest)
            if self.audit is not None:
                self.audit.failed("api_token.auth_failed", "unknown or revoked API token")
            raise Unauthorized("The API token is not valid (it may have been revoked).")
        self.checked.put(digest, caller)
        return caller


def _token_and_user(session: Session, digest: str) -> tuple[ApiToken, User] | None:
    found = session.execute(
        select(ApiToken, User)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == digest)
    ).first()
    return (found[0], found[1]) if found is not None else None


def _token_details(row: ApiToken, user: User | None) -> dict[str, str | None]:
    """Whose token it is and the role it was narrowed to (none: its user's), for the
    audit log."""
    return {
        "user_id": user.id if user is not None else row.user_id,
        "user": user.name if user is not None else None,
        "role": row.role,
    }
