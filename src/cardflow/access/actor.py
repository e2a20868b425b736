"""Who made a change, as cardflow knows it: a user through an API token (by name) or the
web app, the CLI on the host (as the owner), or a program using cardflow as a library.

One small value, written as text where a change is recorded (a flow version's ``actor``):
``token:<name>``, ``web``, ``cli``, ``library``, followed by the user's name in brackets
when a user is known: ``web (alice)``, ``token:deploy (alice)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["token", "web", "cli", "library"]
MAX_ACTOR_CHARS = 250


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str | None = None  # the API token's name (kind "token")
    user_id: str | None = None
    user_name: str | None = None

    def __str__(self) -> str:
        text = f"token:{self.name}" if self.kind == "token" else self.kind
        if self.user_name:
            text = f"{text} ({self.user_name})"
        return text[:MAX_ACTOR_CHARS]

    @classmethod
    def token(cls, name: str) -> Actor:
        return cls("token", name)

    def as_user(self, user_id: str, user_name: str) -> Actor:
        return Actor(self.kind, self.name, user_id, user_name)


WEB = Actor("web")
CLI = Actor("cli")
LIBRARY = Actor("library")
