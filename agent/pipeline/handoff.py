"""Hand-offs between pipeline stages.

Live cameras use a one-slot "latest frame" slot: a new frame replaces the one
waiting, so inference always takes the newest frame and never a queue of stale
ones. Replays use a bounded queue that blocks the producer, so no frame is lost.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The hand-off was closed: the pipeline is stopping."""


class Handoff(Protocol[T]):
    def put(self, item: T) -> bool:
        """Hand an item over; True when an older item was dropped to make room."""
        ...

    def put_final(self, item: T) -> None:
        """Hand over an item that must not be dropped (the end of a stream)."""
        ...

    def get(self, timeout: float) -> T | None:
        """The next item, or None after ``timeout``; raises Closed once closed and empty."""
        ...

    def close(self) -> None: ...


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> bool:
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def put_final(self, item: T) -> None:
        """Hand over an item that must not be replaced (end of stream): waits until the slot is free."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed)
            self._item = item
            self._cond.notify_all()

    def get(self, timeout: float) -> T | None:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is None and self._closed:
                raise Closed
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class BoundedQueue(Generic[T]):
    def __init__(self, size: int) -> None:
        self._q: queue.Queue[T] = queue.Queue(maxsize=size)
        self._closed = threading.Event()

    def put(self, item: T) -> bool:
        while not self._closed.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return False
            except queue.Full:
                continue
        raise Closed

    def put_final(self, item: T) -> None:
        """The queue never drops, so the end of a stream is just the last item."""
        self.put(item)

    def get(self, timeout: float) -> T | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            if self._closed.is_set():
                raise Closed from None
            return None

    def close(self) -> None:
        self._closed.set()

    def qsize(self) -> int:
        return self._q.qsize()
