"""How a flow version names who saved it: the audit log's actor (:mod:`cardflow.audit.actor`,
the one value for "who is acting"), written short — ``token:<name>``, ``web``, ``cli``,
``library`` (``migration`` for versions made by the migration that began the history) —
followed by the user's name in brackets when a user is known: ``web (alice)``,
``token:deploy (alice)``, ``cli (owner)``."""

from __future__ import annotations

from cardflow.audit.actor import Actor, current_actor

MAX_ACTOR_CHARS = 250
_SHORT = {"web_session": "web", "cli": "cli", "library": "library", "anonymous": "anonymous"}


def saved_by(actor: Actor | None = None) -> str:
    """``actor`` (by default: who is acting now) as a flow version records it."""
    actor = actor or current_actor.get()
    short = f"token:{actor.name or actor.id}" if actor.kind == "api_token" else _SHORT[actor.kind]
    if actor.user_name:
        short = f"{short} ({actor.user_name})"
    return short[:MAX_ACTOR_CHARS]
