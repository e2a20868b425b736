"""API tokens for /api/v1: random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.cache import Recent
from cardflow.errors import Conflict, InvalidInput, NotFound, Unauthorized
from cardflow.store.db import Database
from cardflow.store.models import ApiToken
from cardflow.views import Timestamp, View

PREFIX = "cf_"
CACHE_SECONDS = 5.0


class RecentChecks(Recent[str, str]):
    """Tokens found in the database in the last few seconds: hash -> id.

    Spares a database read per request; a token revoked (or a session ended) by another
    process stops working here within ``seconds``."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        super().__init__(seconds)

    def lookup(self, token: str | None) -> str:
        """The id if the token was checked recently; LookupError means ask the database."""
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


def hash_token(token: str) -> str:
    # 256 random bits need no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class ApiTokenService:
    db: Database
    audit: AuditLog | None = None  # where failed token checks are noted (bounded)

    def __post_init__(self) -> None:
        # hash -> (token id, when checked); re-checked after a few seconds so a token
        # revoked by another process stops working quickly.
        self.checked = RecentChecks()

    def create(self, name: str) -> tuple[str, str]:
        """A new token: returns (token id, the token itself, shown only now)."""
        name = (name or "").strip()
        if not name:
            raise InvalidInput("A token needs a name (--name).", field="name")
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.session() as session:
                row = ApiToken(name=name, token_hash=hash_token(token))
                session.add(row)
                session.flush()
                token_id = row.id
                record(session, "api_token.created", Target("api_token", row.id, name))
        except IntegrityError:
            raise Conflict(f"A token named {name!r} already exists.", field="name") from None
        return token_id, token

    def list(self) -> list[ApiTokenView]:
        with self.db.session() as session:
            return [
                ApiTokenView(id=row.id, name=row.name, created_at=row.created_at)
                for row in session.scalars(select(ApiToken).order_by(ApiToken.name))
            ]

    def name_of(self, token_id: str) -> str | None:
        """The token's name (None if it was revoked meanwhile)."""
        with self.db.session() as session:
            return session.scalars(select(ApiToken.name).where(ApiToken.id == token_id)).first()

    def revoke(self, name_or_id: str) -> None:
        with self.db.session() as session:
            row = session.scalars(
                select(ApiToken).where((ApiToken.id == name_or_id) | (ApiToken.name == name_or_id))
            ).first()
            if row is None:
                raise NotFound(f"There is no API token {name_or_id!r}.", field="name")
            record(session, "api_token.revoked", Target("api_token", row.id, row.name))
            session.delete(row)
        self.checked.clear()

    def authenticate_cached(self, token: str | None) -> str:
        """The token's id if it was checked recently; LookupError means ask the database."""
        return self.checked.lookup(token)

    def authenticate(self, token: str | None) -> str:
        """The token's id, or Unauthorized."""
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
            row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
            found = row is not None and hmac.compare_digest(row.token_hash, digest)
            token_id = row.id if row is not None else ""
        if not found:
            self.checked.forget(digest)
            if self.audit is not None:
                self.audit.failed("api_token.auth_failed", "unknown or revoked API token")
            raise Unauthorized("The API token is not valid (it may have been revoked).")
        self.checked.put(digest, token_id)
        return token_id
