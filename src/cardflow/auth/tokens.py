"""Access tokens shared by every card using a connection: cached, refreshed exactly once.

One refresh at a time per connection:
- across asyncio tasks of a loop: an asyncio.Lock (waiters pile up there, cheaply);
- across threads and loops of a process: a threading.Lock, taken without blocking the loop;
- across processes: a lease row in the database, taken with a conditional UPDATE. The token
  is re-read after the lease is won, and there is no unlocked fallback: a waiter that
  cannot get the lease in time fails its card as retryable.
A new token (and a rotated refresh token) is committed before anyone uses it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

from cardflow.errors import NeedsAuthorization, TokenRejected, TokenRequestFailed
from cardflow.oauth2.tokens import TokenResponse


@dataclass(frozen=True)
class TokenSet:
    """A token as stored, with the generation it was stored under."""

    token: TokenResponse
    generation: int
    refresh_at: float | None  # when to refresh proactively (expiry minus skew)

    @property
    def access_token(self) -> str:
        return self.token.access_token

    def is_fresh(self, now: float) -> bool:
        return self.refresh_at is None or now < self.refresh_at


class TokenStore(Protocol):
    """Where tokens live between processes (see cardflow.store.tokens)."""

    def load(self, connection_id: str) -> tuple[TokenResponse, int] | None: ...

    def try_lease(self, connection_id: str, owner: str, seconds: float) -> bool: ...

    def save(self, connection_id: str, owner: str, token: TokenResponse) -> int: ...

    def release(self, connection_id: str, owner: str) -> None: ...

    def mark_status(self, connection_id: str, status: str, message: str) -> None: ...


class TokenGrant(Protocol):
    """How a connection gets a new token (client credentials, refresh token, …)."""

    async def fetch(self, current: TokenResponse | None) -> TokenResponse: ...


class TokenManager:
    """The token of one connection in this process."""

    def __init__(
        self,
        connection_id: str,
        grant: TokenGrant,
        store: TokenStore,
        *,
        skew: float,
        lease_seconds: float,
    ) -> None:
        self.connection_id = connection_id
        self._grant = grant
        self._store = store
        self._skew = skew
        self._lease_seconds = lease_seconds
        self._cached: TokenSet | None = None
        self._thread_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._owner = f"{os.getpid()}-{secrets.token_hex(6)}"

    def cached(self) -> TokenSet | None:
        """The cached token if it is fresh; no I/O."""
        token = self._cached
        if token is not None and token.is_fresh(time.time()):
            return token
        return None

    def last(self) -> TokenSet | None:
        """The last token seen, fresh or not; no I/O."""
        return self._cached

    async def get(self) -> TokenSet:
        """A fresh token, refreshing it first if needed."""
        token = self.cached()
        if token is not None:
            return token
        return await self.refresh(stale=self._cached)

    async def refresh(self, stale: TokenSet | None) -> TokenSet:
        """Replace ``stale`` (expired, or refused with a 401) unless someone already did."""
        lock = self._loop_lock()
        async with lock:
            token = self._usable(self._cached, stale)
            if token is not None:
                return token
            await self._acquire_thread_lock()
            try:
                token = self._usable(self._cached, stale)
                if token is not None:
                    return token
                token = await self._refresh_across_processes(stale)
                self._cached = token
                return token
            finally:
                self._thread_lock.release()

    def forget(self) -> None:
        self._cached = None

    def _usable(self, token: TokenSet | None, stale: TokenSet | None) -> TokenSet | None:
        if token is None or not token.is_fresh(time.time()):
            return None
        if stale is not None and token.generation == stale.generation:
            return None
        return token

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        return lock

    async def _acquire_thread_lock(self) -> None:
        # Polling keeps cancellation safe: a blocked acquire in a worker thread could
        # take the lock after its task was cancelled and never release it.
        delay = 0.001
        while not self._thread_lock.acquire(blocking=False):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _wrap(self, token: TokenResponse, generation: int) -> TokenSet:
        refresh_at = None
        if token.expires_at is not None:
            lifetime = max(token.expires_at - token.obtained_at, 0.0)
            refresh_at = token.expires_at - min(self._skew, lifetime / 2)
        return TokenSet(token, generation, refresh_at)

    async def _load(self) -> TokenSet | None:
        loaded = await asyncio.to_thread(self._store.load, self.connection_id)
        return None if loaded is None else self._wrap(*loaded)

    async def _refresh_across_processes(self, stale: TokenSet | None) -> TokenSet:
        deadline = time.monotonic() + self._lease_seconds * 1.5
        delay = 0.01
        while True:
            token = self._usable(await self._load(), stale)
            if token is not None:
                return token  # another process refreshed it
            if await asyncio.to_thread(
                self._store.try_lease, self.connection_id, self._owner, self._lease_seconds
            ):
                break
            if time.monotonic() > deadline:
                raise TokenRequestFailed(
                    "Timed out waiting for another cardflow process to refresh this "
                    "connection's token; try again."
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            current = await self._load()
            token = self._usable(current, stale)
            if token is not None:
                return token
            try:
                fresh = await asyncio.wait_for(
                    self._grant.fetch(current.token if current else None),
                    timeout=self._lease_seconds * 0.9,
                )
            except TimeoutError:
                raise TokenRequestFailed("The token endpoint did not answer in time.") from None
            except NeedsAuthorization as exc:
                await asyncio.to_thread(
                    self._store.mark_status, self.connection_id, "needs_authorization", exc.message
                )
                raise
            except TokenRejected as exc:
                await asyncio.to_thread(
                    self._store.mark_status, self.connection_id, "error", exc.message
                )
                raise
            generation = await asyncio.to_thread(
                self._store.save, self.connection_id, self._owner, fresh
            )
            return self._wrap(fresh, generation)
        finally:
            await asyncio.to_thread(self._store.release, self.connection_id, self._owner)
