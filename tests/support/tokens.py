"""In-memory stand-ins for a token grant and a token store (unit tests of token auths;
the integration tests use the real store and a real authorization server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from cardflow.connections.token_store import UnansweredRefresh
from cardflow.credentials.token_endpoint import TokenResponse


class FakeGrant:
    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, current: TokenResponse | None) -> TokenResponse:
        self.calls += 1
        await asyncio.sleep(0.01)
        return TokenResponse(f"tok-{self.calls}", "Bearer", None, None, None, 0.0)


class MemoryTokenStore:
    def __init__(self) -> None:
        self.token: tuple[TokenResponse, int] | None = None
        self.locked = False  # held by "another process" when set by a test
        self.mark: tuple[str, datetime] | None = None
        self.statuses: list[tuple[str, str]] = []

    def load(self, connection_id: str) -> tuple[TokenResponse, int] | None:
        return self.token

    def try_refresh_lock(self, connection_id: str) -> object | None:
        if self.locked:
            return None
        self.locked = True
        return object()

    def release_refresh_lock(self, lock: object) -> None:
        self.locked = False

    def begin_refresh(self, connection_id: str, owner: str) -> UnansweredRefresh | None:
        previous = UnansweredRefresh(*self.mark) if self.mark else None
        self.mark = (owner, datetime.now(UTC))
        return previous

    def end_refresh(self, connection_id: str, owner: str) -> None:
        self.mark = None

    def save(self, connection_id: str, owner: str, token: TokenResponse) -> int:
        generation = (self.token[1] if self.token else 0) + 1
        self.token = (token, generation)
        self.mark = None
        return generation

    def grant_refused(self, connection_id: str, message: str, *, needs_authorization: bool) -> None:
        self.statuses.append(("needs_authorization" if needs_authorization else "error", message))
