"""A private event loop in a daemon thread, so sync callers can use the async core."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="cardflow-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._start()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if final is not None:
                final.close()
            return
        if final is not None:
            asyncio.run_coroutine_threadsafe(final, loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
