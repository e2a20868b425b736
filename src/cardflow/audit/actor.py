"""Who is acting: the value every audit entry names, set once per request or command."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

# api_token: a request with an API token; web_session: the web app; cli: a command on the
# host; library: Python code with cardflow.open(); anonymous: not (yet) known, e.g. a
# failed login or the browser coming back from an OAuth provider without a session.
ActorKind = Literal["api_token", "web_session", "cli", "library", "anonymous"]


@dataclass(frozen=True)
class Actor:
    """Who did it (``kind`` and, where known, the token's or session's ``id`` and
    ``name``) and from where (``address``: the client IP as the server sees it, or
    ``cli@<host>``), and the user behind it (``user_id``, ``user_name``: an API token's or
    web session's user; for the CLI on the host, the owner)."""

    kind: ActorKind
    id: str | None = None
    name: str | None = None
    address: str | None = None
    user_id: str | None = None
    user_name: str | None = None

    def as_(self, kind: ActorKind, id: str | None = None, name: str | None = None) -> Actor:
        """The same place, now known as ``kind``/``id``."""
        return replace(self, kind=kind, id=id, name=name)

    def as_user(self, user_id: str | None, user_name: str | None) -> Actor:
        """The same actor, now known to act for this user."""
        return replace(self, user_id=user_id, user_name=user_name)


LIBRARY = Actor("library")

current_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar(
    "cardflow_actor", default=LIBRARY
)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Changes made inside are recorded as ``actor``'s."""
    token = current_actor.set(actor)
    try:
        yield actor
    finally:
        current_actor.reset(token)
