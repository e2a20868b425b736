"""Web app logins: one-time login links, browser sessions and their CSRF tokens.

A login link (``cardflow login-link``) is a random token, stored hashed, usable once within
15 minutes. Redeeming it opens a session: another random token, kept by the browser in an
HttpOnly cookie and stored hashed. The CSRF token is derived from the session token (HMAC),
so it needs no storage and dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from cardflow.access.api_tokens import RecentChecks, hash_token
from cardflow.audit.actor import current_actor
from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.errors import Unauthorized
from cardflow.store.db import Database
from cardflow.store.models import LoginLink, WebSession

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
        self.checked = RecentChecks()

    def create_login_link(self) -> tuple[str, datetime]:
        """A new one-time login token and when it expires."""
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + LINK_LIFETIME
        with self.db.session() as session:
            session.add(LoginLink(token_hash=hash_token(token), expires_at=expires))
        return token, expires

    def any_login_link(self) -> bool:
        """Whether a login link was ever issued (``serve`` prints one on first start)."""
        with self.db.session() as session:
            return session.scalars(select(LoginLink.id).limit(1)).first() is not None

    def redeem(self, token: str | None) -> str:
        """Use a login link once; returns a new session token."""
        try:
            return self._redeem(token)
        except LoginLinkInvalid:
            if self.audit is not None:
                self.audit.failed("web.login_failed", "login link not valid, used or expired")
            raise

    def _redeem(self, token: str | None) -> str:
        now = datetime.now(UTC)
        with self.db.session() as session:
            used = session.execute(
                update(LoginLink)
                .where(
                    LoginLink.token_hash == hash_token(token or ""),
                    LoginLink.used_at.is_(None),
                    LoginLink.expires_at > now,
                )
                .values(used_at=now)
            )
            if not token or used.rowcount != 1:  # type: ignore[attr-defined]
                raise LoginLinkInvalid(
                    "This login link is not valid: links work once and expire after 15 "
                    "minutes. Run `cardflow login-link` for a new one."
                )
            session_token = secrets.token_urlsafe(32)
            opened = WebSession(
                token_hash=hash_token(session_token), expires_at=now + SESSION_LIFETIME
            )
            session.add(opened)
            session.flush()
            actor = current_actor.get().as_("web_session", opened.id, "web session")
            record(session, "web.login", Target("web_session", opened.id), actor=actor)
            # Old, expired rows go whenever someone logs in.
            session.execute(delete(LoginLink).where(LoginLink.expires_at < now - LINK_LIFETIME))
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
        return session_token

    def authenticate_cached(self, token: str | None) -> str:
        """The session id if checked in the last few seconds; LookupError: ask the database."""
        return self.checked.lookup(token)

    def authenticate(self, token: str | None) -> str:
        """The session id, or Unauthorized."""
        if not token:
            raise Unauthorized("Log in with a link from `cardflow login-link`.")
        digest = hash_token(token)
        with self.db.session() as session:
            row = session.scalars(
                select(WebSession).where(
                    WebSession.token_hash == digest, WebSession.expires_at > datetime.now(UTC)
                )
            ).first()
            if row is None:
                self.checked.forget(digest)
                raise Unauthorized(
                    "Your session has ended. Log in again with a link from `cardflow login-link`."
                )
            self.checked.put(digest, row.id)
            return row.id

    def end(self, token: str | None) -> None:
        """Log out: the session stops working at once (in this process; others within 5 s)."""
        if not token:
            return
        digest = hash_token(token)
        self.checked.forget(digest)
        with self.db.session() as session:
            ended = session.scalars(
                select(WebSession.id).where(WebSession.token_hash == digest)
            ).first()
            if ended is None:
                return
            actor = current_actor.get().as_("web_session", ended, "web session")
            record(session, "web.logout", Target("web_session", ended), actor=actor)
            session.execute(delete(WebSession).where(WebSession.id == ended))
