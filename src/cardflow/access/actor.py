"""Who made a change, as cardflow knows it today: an API token (by name), the web app,
the CLI on the host, or a program using cardflow as a library.

One small value, written as text where a change is recorded (a flow version's ``actor``):
``token:<name>``, ``web``, ``cli``, ``library``.
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

    def __str__(self) -> str:
        text = f"token:{self.name}" if self.kind == "token" else self.kind
        return text[:MAX_ACTOR_CHARS]

    @classmethod
    def token(cls, name: str) -> Actor:
        return cls("token", name)


WEB = Actor("web")
CLI = Actor("cli")
LIBRARY = Actor("library")
