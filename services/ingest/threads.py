"""A bounded hand-off from a worker thread to the event loop.

Parsing files and generating events is CPU work that must not run on the event
loop. ``ThreadFeed`` runs an iterator in a worker thread and passes its items
through a bounded ``asyncio.Queue``: the thread blocks when the loop side falls
behind, so memory stays flat whatever the input size.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_PUT_POLL_SECONDS = 0.2


class _Stopped(Exception):
    """The consumer went away; the worker thread must stop."""


class ThreadFeed(Generic[T]):
    """Items of ``make_iter()`` produced in a worker thread, consumed with ``await get()``."""

    def __init__(self, make_iter: Callable[[], Iterator[T]], *, maxsize: int = 4) -> None:
        self._make_iter = make_iter
        self._queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._worker = asyncio.ensure_future(asyncio.to_thread(self._run))
        self.finished = False

    @property
    def stop_event(self) -> threading.Event:
        """Set when the consumer closed the feed; producers may poll it to stop early."""
        return self._stop

    def _put(self, item: tuple[str, object]) -> None:
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError as exc:  # the loop is closed: nobody will read this
            raise _Stopped from exc
        while True:
            try:
                future.result(timeout=_PUT_POLL_SECONDS)
                return
            except TimeoutError:
                # Blocked on a full queue: that is the flow control. Leave if the consumer is gone.
                if self._stop.is_set():
                    future.cancel()
                    raise _Stopped from None

    def _run(self) -> None:
        try:
            for item in self._make_iter():
                if self._stop.is_set():
                    return
                self._put(("item", item))
            self._put(("end", None))
        except _Stopped:
            return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            try:
                self._put(("error", exc))
            except _Stopped:
                return

    def _unpack(self, kind: str, value: object) -> tuple[bool, T | None]:
        if kind == "end":
            self.finished = True
            return False, None
        if kind == "error":
            self.finished = True
            assert isinstance(value, BaseException)
            raise value
        return True, value  # type: ignore[return-value]

    async def get(self) -> tuple[bool, T | None]:
        """Next item as ``(True, item)``, or ``(False, None)`` at the end; re-raises the producer's error."""
        if self.finished:
            return False, None
        kind, value = await self._queue.get()
        return self._unpack(kind, value)

    def get_nowait(self) -> tuple[bool, T | None] | None:
        """Like :meth:`get` but None when nothing is ready yet."""
        if self.finished:
            return False, None
        try:
            kind, value = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return self._unpack(kind, value)

    async def close(self) -> None:
        """Stop the worker thread and wait for it (it notices within a fraction of a second)."""
        self._stop.set()
        while not self._worker.done():
            # Drain so a producer blocked on put() sees room, then its stop check.
            while not self._queue.empty():
                self._queue.get_nowait()
            await asyncio.wait({self._worker}, timeout=_PUT_POLL_SECONDS)
        if not self._worker.cancelled():
            self._worker.exception()  # retrieved so asyncio does not log it
