"""Access tokens shared by every card using a connection: cached, refreshed exactly once.

One refresh at a time per connection:
- across asyncio tasks of a loop: an asyncio.Lock (waiters pile up there, cheaply);
- across threads and loops of a process: a threading.Lock, taken without blocking the loop;
- across processes: the store's refresh lock, which dies with the process holding it (a
  PostgreSQL advisory lock, a file lock for SQLite), so a crash never leaves anyone
  waiting. The token is re-read once the lock is won, and there is no unlocked fallback:
  a waiter that cannot get the lock in time fails its card as retryable.
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
from datetime import datetime
from typing import Any, Protocol

from cardflow.credentials.token_endpoint import TokenResponse
from cardflow.errors import NeedsAuthorization, TokenRejected, TokenRequestFailed
from cardflow.metrics import TOKEN_REQUESTS


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


class Unanswered(Protocol):
    """A refresh that started and never stored its answer (cardflow.connections.token_store)."""

    @property
    def started_at(self) -> datetime: ...


class TokenStore(Protocol):
    """Where tokens live between processes (see cardflow.connections.token_store)."""

    def load(self, connection_id: str) -> tuple[TokenResponse, int] | None: ...

    def try_refresh_lock(self, connection_id: str) -> Any | None: ...

    def release_refresh_lock(self, lock: Any) -> None: ...

    def begin_refresh(self, connection_id: str, owner: str) -> Unanswered | None: ...

    def end_refresh(self, connection_id: str, owner: str) -> None: ...

    def save(self, connection_id: str, owner: str, token: TokenResponse) -> int: ...

    def grant_refused(
        self, connection_id: str, message: str, *, needs_authorization: bool
    ) -> None: ...


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
        refresh_timeout: float = 30.0,
        describe_unanswered: Any = None,
    ) -> None:
        self.connection_id = connection_id
        self._grant = grant
        self._store = store
        self._skew = skew
        self._refresh_timeout = refresh_timeout
        self._describe_unanswered = describe_unanswered
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
        # Waiting for another process's refresh: as long as a refresh may take, and a bit.
        deadline = time.monotonic() + self._refresh_timeout * 1.5
        delay = 0.01
        while True:
            token = self._usable(await self._load(), stale)
            if token is not None:
                return token  # another process refreshed it
            lock = await self._try_lock()
            if lock is not None:
                break
            if time.monotonic() > deadline:
                raise TokenRequestFailed(
                    "Timed out waiting for another cardflow process to refresh this "
                    "connection's token; try again."
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            current = await self._load()
            token = self._usable(current, stale)
            if token is not None:
                return token
            return await self._fetch(current)
        finally:
            self._store.release_refresh_lock(lock)

    async def _try_lock(self) -> Any | None:
        attempt = asyncio.ensure_future(
            asyncio.to_thread(self._store.try_refresh_lock, self.connection_id)
        )
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The thread may still win the lock: give it back as soon as it does.
            def give_back(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None and done.result():
                    self._store.release_refresh_lock(done.result())

            attempt.add_done_callback(give_back)
            raise

    async def _fetch(self, current: TokenSet | None) -> TokenSet:
        """Ask the grant for a new token (holding the lock), and store it before use."""
        store, owner = self._store, self._owner
        unanswered = await asyncio.to_thread(store.begin_refresh, self.connection_id, owner)
        try:
            fresh = await asyncio.wait_for(
                self._grant.fetch(current.token if current else None),
                timeout=self._refresh_timeout,
            )
        except TimeoutError:
            # The request may have reached the provider: the mark stays, to explain a
            # refusal of the stored refresh token later.
            TOKEN_REQUESTS.labels(self.connection_id, "failed").inc()
            raise TokenRequestFailed("The token endpoint did not answer in time.") from None
        except NeedsAuthorization as exc:
            TOKEN_REQUESTS.labels(self.connection_id, "refused").inc()
            if unanswered is not None and self._describe_unanswered is not None:
                exc.message = f"{exc.message} {self._describe_unanswered(unanswered)}"
                exc.args = (exc.message,)
            await asyncio.to_thread(store.end_refresh, self.connection_id, owner)
            await asyncio.to_thread(
                store.grant_refused,
                self.connection_id,
                exc.message,
                needs_authorization=True,
            )
            raise
        except TokenRejected as exc:
            TOKEN_REQUESTS.labels(self.connection_id, "refused").inc()
            await asyncio.to_thread(store.end_refresh, self.connection_id, owner)
            await asyncio.to_thread(
                store.grant_refused,
                self.connection_id,
                exc.message,
                needs_authorization=False,
            )
            raise
        except Exception:
            TOKEN_REQUESTS.labels(self.connection_id, "failed").inc()
            raise
        TOKEN_REQUESTS.labels(self.connection_id, "ok").inc()
        # Stored before anything uses it, and before the lock goes, whatever happens to
        # this task meanwhile: a rotated refresh token must never be lost.
        saving = asyncio.ensure_future(
            asyncio.to_thread(store.save, self.connection_id, owner, fresh)
        )
        try:
            generation = await asyncio.shield(saving)
        except asyncio.CancelledError:
            await asyncio.wait([saving])
            raise
        return self._wrap(fresh, generation)
