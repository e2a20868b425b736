"""Users: listed, invited with a one-time link, given another role, removed.

The first user is the owner, created as "owner" when cardflow first needs one (the first
login link or API token on the host). Others join by invitation: a one-time link (like a
login link: random, stored hashed, expiring, single use) that creates the user, with the
name and role the owner chose, when it is opened (see :mod:`cardflow.access.web_sessions`).
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import Field
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cardflow.access.hashing import hash_token
from cardflow.access.roles import Role
from cardflow.audit.record import Target, created, field_change, record
from cardflow.errors import Conflict, InvalidInput, NotFound
from cardflow.store.db import Database
from cardflow.store.models import ApiToken, LoginLink, User, WebSession
from cardflow.views import Timestamp, View

OWNER_NAME = "owner"
INVITE_LIFETIME = timedelta(days=7)
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320
MAX_PENDING_INVITES = 200


class UserView(View):
    """A user as listed."""

    id: str
    name: str
    email: str | None
    role: Role = Field(description="owner, admin, builder or viewer.")
    created_at: Timestamp


class InviteView(View):
    """A pending invitation (the link itself is shown only once, when it is made)."""

    id: str
    name: str
    email: str | None
    role: Role
    created_at: Timestamp
    expires_at: Timestamp


def _view(row: User) -> UserView:
    return UserView(
        id=row.id, name=row.name, email=row.email, role=Role(row.role), created_at=row.created_at
    )


def _invite_view(row: LoginLink) -> InviteView:
    return InviteView(
        id=row.id,
        name=row.invite_name or "",
        email=row.invite_email,
        role=Role(row.invite_role or Role.viewer),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def check_name(value: object, field: str = "name") -> str:
    name = str(value or "").strip()
    if not name:
        raise InvalidInput("A user needs a name.", field=field)
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            f"A user's name is one line of at most {MAX_NAME_CHARS} characters.", field=field
        )
    return name


def check_email(value: object) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    email = str(value).strip()
    local, at, domain = email.partition("@")
    if len(email) > MAX_EMAIL_CHARS or not at or not local or "." not in domain or " " in email:
        raise InvalidInput(f"{email!r} is not an email address.", field="email")
    return email


def find_user(session: Session, ref: str) -> User:
    row = session.scalars(select(User).where((User.id == ref) | (User.name == ref))).first()
    if row is None:
        raise NotFound(f"There is no user {ref!r}.", field="user")
    return row


def name_taken(session: Session, name: str, *, but: str | None = None) -> bool:
    """Whether a user, or a pending invitation, already has this name."""
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        return True
    pending = select(LoginLink.id).where(
        LoginLink.invite_name == name,
        LoginLink.used_at.is_(None),
        LoginLink.expires_at > datetime.now(UTC),
    )
    if but is not None:
        pending = pending.where(LoginLink.id != but)
    return session.scalars(pending).first() is not None


@dataclass
class UserService:
    db: Database
    # Called after a change to who may do what: forgets the tokens and sessions checked
    # recently (in this process; others check again within a few seconds).
    changed: Callable[[], None] = field(default=lambda: None)

    def owner(self) -> UserView:
        """The first owner; with no users yet, the owner "owner" is created (first start)."""
        with self.db.session() as session:
            return _view(self.owner_row(session))

    @staticmethod
    def owner_row(session: Session) -> User:
        row = session.scalars(
            select(User).where(User.role == Role.owner).order_by(User.created_at, User.id)
        ).first()
        if row is not None:
            return row
        if session.scalars(select(User.id).limit(1)).first() is not None:
            # unreachable through cardflow (the last owner cannot go), but say so plainly
            raise Conflict("cardflow has users but no owner.", field="role")
        row = User(name=OWNER_NAME, role=Role.owner)
        session.add(row)
        session.flush()
        return row

    def list(self) -> list[UserView]:
        with self.db.session() as session:
            self.owner_row(session)  # the first user is always the owner
            return [_view(row) for row in session.scalars(select(User).order_by(User.name))]

    def get(self, ref: str) -> UserView:
        with self.db.session() as session:
            self.owner_row(session)
            return _view(find_user(session, ref))

    def invite(
        self, *, name: object = None, email: object = None, role: object = Role.viewer
    ) -> tuple[InviteView, str]:
        """A new invitation: its view and the one-time token (shown only now)."""
        checked_email = check_email(email)
        checked_role = Role.parse(role)
        checked_name = check_name(name if name not in (None, "") else checked_email)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.session() as session:
            self.owner_row(session)  # the first user is always the owner
            if name_taken(session, checked_name):
                raise Conflict(
                    f"There is already a user or an invitation named {checked_name!r}.",
                    field="name",
                )
            pending = session.scalar(
                select(func.count())
                .select_from(LoginLink)
                .where(
                    LoginLink.invite_name.is_not(None),
                    LoginLink.used_at.is_(None),
                    LoginLink.expires_at > now,
                )
            )
            if (pending or 0) >= MAX_PENDING_INVITES:
                raise InvalidInput(
                    f"There are {MAX_PENDING_INVITES} pending invitations already; cancel "
                    "some first.",
                    field="name",
                )
            row = LoginLink(
                token_hash=hash_token(token),
                expires_at=now + INVITE_LIFETIME,
                invite_name=checked_name,
                invite_email=checked_email,
                invite_role=checked_role.value,
            )
            session.add(row)
            session.flush()
            # the invitation by its id; its link is a secret and never recorded
            record(
                session,
                "user.invited",
                Target("invite", row.id, checked_name),
                created({"name": checked_name, "email": checked_email, "role": checked_role.value}),
            )
            return _invite_view(row), token

    def invites(self) -> builtins.list[InviteView]:
        """Pending invitations (not used, not expired), newest first."""
        with self.db.session() as session:
            rows = session.scalars(
                select(LoginLink)
                .where(
                    LoginLink.invite_name.is_not(None),
                    LoginLink.used_at.is_(None),
                    LoginLink.expires_at > datetime.now(UTC),
                )
                .order_by(LoginLink.created_at.desc())
            )
            return [_invite_view(row) for row in rows]

    def cancel_invite(self, invite_id: str) -> None:
        with self.db.session() as session:
            row = session.scalars(
                select(LoginLink).where(
                    LoginLink.id == invite_id,
                    LoginLink.invite_name.is_not(None),
                    LoginLink.used_at.is_(None),
                )
            ).first()
            if row is None:
                raise NotFound(f"There is no pending invitation {invite_id!r}.", field="invite")
            record(
                session,
                "invite.cancelled",
                Target("invite", row.id, row.invite_name),
                details={"role": row.invite_role},
            )
            session.delete(row)

    def set_role(self, ref: str, role: object) -> UserView:
        """Give a user another role; their tokens follow (none exceeds the user's role)."""
        new_role = Role.parse(role)
        with self.db.session() as session:
            self.owner_row(session)
            row = find_user(session, ref)
            if row.role == Role.owner and new_role != Role.owner:
                self._keep_an_owner(session, row)
            if row.role != new_role.value:
                record(
                    session,
                    "user.role_changed",
                    Target("user", row.id, row.name),
                    [field_change("role", row.role, new_role.value)],
                )
            row.role = new_role.value
            session.flush()
            view = _view(row)
        self.changed()
        return view

    def remove(self, ref: str) -> UserView:
        """Remove a user: their sessions end and their API tokens are revoked."""
        with self.db.session() as session:
            self.owner_row(session)
            row = find_user(session, ref)
            if row.role == Role.owner:
                self._keep_an_owner(session, row)
            view = _view(row)
            record(
                session,
                "user.removed",
                Target("user", row.id, row.name),
                details={"role": row.role},
            )
            session.execute(delete(WebSession).where(WebSession.user_id == row.id))
            session.execute(delete(ApiToken).where(ApiToken.user_id == row.id))
            session.execute(delete(LoginLink).where(LoginLink.user_id == row.id))
            session.delete(row)
        self.changed()
        return view

    @staticmethod
    def _keep_an_owner(session: Session, row: User) -> None:
        # The owners' rows are locked (PostgreSQL) until this change commits: two changes
        # at once, each to another of the last two owners, cannot both see "one more left".
        # (SQLite lets one writer commit; the other's write then fails rather than slips.)
        owners = session.scalars(
            select(User.id).where(User.role == Role.owner).with_for_update()
        ).all()
        if len(owners) <= 1:
            raise Conflict(
                f"{row.name!r} is the last owner: make another user an owner first.",
                field="role",
            )
