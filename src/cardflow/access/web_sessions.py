"""Web app logins: one-time login links, browser sessions and their CSRF tokens.

A login link (``cardflow login-link``, the owner's) is a random token, stored hashed, usable
once within 15 minutes. An invitation is the same kind of link, for a week, that creates its
user first. Redeeming either opens a session for its user: another random token, kept by
the browser in an HttpOnly cookie and stored hashed. The CSRF token is derived from the
session token (HMAC), so it needs no storage and dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from cardflow.access.api_tokens import RecentChecks
from cardflow.access.hashing import hash_token
from cardflow.access.roles import Caller, Role
from cardflow.access.users import INVITE_LIFETIME, UserService, find_user, name_taken
from cardflow.audit.actor import current_actor
from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.errors import Unauthorized
from cardflow.store.db import Database
from cardflow.store.models import LoginLink, User, WebSession

LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(days=7)


def csrf_token(session_token: str) -> str:
    """The CSRF token pages send back in X-CSRF-Token (or a form's csrf_token field)."""
    return hmac.new(session_token.encode(), b"cardflow-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, given: str | None) -> bool:
    # bytes: compare_digest refuses non-ASCII str (a 500 for a crafted header otherwise)
    given_bytes = (given or "").encode("utf-8", "replace")
    return bool(given) and hmac.compare_digest(csrf_token(session_token).encode(), given_bytes)


class LoginLinkInvalid(Unauthorized):
    type = "login_link_invalid"


@dataclass
class WebSessionService:
    db: Database
    audit: AuditLog | None = None  # where failed logins are noted (bounded)

    def __post_init__(self) -> None:
        self.checked: RecentChecks[Caller] = RecentChecks()

    def create_login_link(self, user: str | None = None) -> tuple[str, datetime]:
        """A new one-time login token for ``user`` (name or id; default: the owner, created
        on first use) and when it expires."""
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + LINK_LIFETIME
        with self.db.session() as session:
            row = find_user(session, user) if user else UserService.owner_row(session)
            session.add(LoginLink(token_hash=hash_token(token), expires_at=expires, user_id=row.id))
        return token, expires

    def any_login_link(self) -> bool:
        """Whether a login link was ever issued (``serve`` prints one on first start)."""
        with self.db.session() as session:
            return session.scalars(select(LoginLink.id).limit(1)).first() is not None

    def redeem(self, token: str | None) -> str:
        """Use a login link or invitation once; returns a new session token for its user
        (an invitation's user is created now)."""
        try:
            return self._redeem(token)
        except LoginLinkInvalid:
            if self.audit is not None:
                self.audit.failed(
                    "web.login_failed",
                    "login link not valid, used or expired",
                    user=self._link_user(token),
                )
            raise

    def _link_user(self, token: str | None) -> tuple[str | None, str | None] | None:
        """Whom a (used or expired) login link or invitation was for, if it is known."""
        if not token:
            return None
        with self.db.session() as session:
            found = session.execute(
                select(LoginLink.invite_name, User.id, User.name)
                .outerjoin(User, LoginLink.user_id == User.id)
                .where(LoginLink.token_hash == hash_token(token))
            ).first()
        if found is None:
            return None
        invited, user_id, user_name = found
        return (user_id, user_name) if user_id is not None else (None, invited)

    def _redeem(self, token: str | None) -> str:
        now = datetime.now(UTC)
        digest = hash_token(token or "")
        with self.db.session() as session:
            used = session.execute(
                update(LoginLink)
                .where(
                    LoginLink.token_hash == digest,
                    LoginLink.used_at.is_(None),
                    LoginLink.expires_at > now,
                )
                .values(used_at=now)
            )
            if not token or used.rowcount != 1:  # type: ignore[attr-defined]
                raise LoginLinkInvalid(
                    "This link is not valid: login links work once and expire after 15 "
                    "minutes (invitations after 7 days). Run `cardflow login-link` for a new "
                    "one, or ask the owner for a new invitation."
                )
            link = session.scalars(select(LoginLink).where(LoginLink.token_hash == digest)).one()
            if link.invite_name is not None:
                if name_taken(session, link.invite_name, but=link.id):
                    raise LoginLinkInvalid(
                        f"A user named {link.invite_name!r} exists already: ask the owner "
                        "for a new invitation."
                    )
                user = User(
                    name=link.invite_name,
                    email=link.invite_email,
                    role=Role.parse(link.invite_role).value,
                )
                session.add(user)
                session.flush()
                joined = True
            elif link.user_id is not None:
                user = session.scalars(select(User).where(User.id == link.user_id)).one()
                joined = False
            else:  # a link from before users: the owner's
                user = UserService.owner_row(session)
                joined = False
            session_token = secrets.token_urlsafe(32)
            opened = WebSession(
                token_hash=hash_token(session_token),
                expires_at=now + SESSION_LIFETIME,
                user_id=user.id,
            )
            session.add(opened)
            session.flush()
            actor = (
                current_actor.get()
                .as_("web_session", opened.id, "web session")
                .as_user(user.id, user.name)
            )
            if joined:
                # the invitation's id (never its link) ties this to user.invited
                record(
                    session,
                    "user.joined",
                    Target("user", user.id, user.name),
                    details={"role": user.role, "invite_id": link.id},
                    actor=actor,
                )
            record(session, "web.login", Target("web_session", opened.id), actor=actor)
            # Old, expired rows go whenever someone logs in.
            session.execute(delete(LoginLink).where(LoginLink.expires_at < now - INVITE_LIFETIME))
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
        return session_token

    def authenticate_cached(self, token: str | None) -> Caller:
        """The session's user if checked in the last few seconds; LookupError: ask the
        database."""
        return self.checked.lookup(token)

    def authenticate(self, token: str | None) -> Caller:
        """The session's user and role, or Unauthorized."""
        if not token:
            raise Unauthorized("Log in with a link from `cardflow login-link`.")
        digest = hash_token(token)
        with self.db.session() as session:
            found = session.execute(
                select(User, WebSession.id)
                .join(WebSession, WebSession.user_id == User.id)
                .where(WebSession.token_hash == digest, WebSession.expires_at > datetime.now(UTC))
            ).first()
            if found is None:
                self.checked.forget(digest)
                raise Unauthorized(
                    "Your session has ended. Log in again with a link from `cardflow login-link`."
                )
            user, session_id = found[0], found[1]
            caller = Caller(
                user_id=user.id, user_name=user.name, role=Role(user.role), via_id=session_id
            )
            self.checked.put(digest, caller)
            return caller

    def open_for(self, user_id: str) -> str:
        """A new session for a user already authenticated (single sign-on); its token."""
        now = datetime.now(UTC)
        session_token = secrets.token_urlsafe(32)
        with self.db.session() as session:
            opened = WebSession(
                token_hash=hash_token(session_token),
                expires_at=now + SESSION_LIFETIME,
                user_id=user_id,
            )
            session.add(opened)
            session.flush()
            user = session.scalars(select(User).where(User.id == user_id)).one()
            actor = (
                current_actor.get()
                .as_("web_session", opened.id, "web session")
                .as_user(user.id, user.name)
            )
            record(
                session,
                "web.login",
                Target("web_session", opened.id),
                details={"via": "single sign-on"},
                actor=actor,
            )
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
        return session_token

    def end(self, token: str | None) -> None:
        """Log out: the session stops working at once (in this process; others within 5 s)."""
        if not token:
            return
        digest = hash_token(token)
        self.checked.forget(digest)
        with self.db.session() as session:
            found = session.execute(
                select(WebSession.id, User.id, User.name)
                .join(User, WebSession.user_id == User.id)
                .where(WebSession.token_hash == digest)
            ).first()
            if found is None:
                return
            ended, user_id, user_name = found
            actor = (
                current_actor.get()
                .as_("web_session", ended, "web session")
                .as_user(user_id, user_name)
            )
            record(session, "web.logout", Target("web_session", ended), actor=actor)
            session.execute(delete(WebSession).where(WebSession.id == ended))
