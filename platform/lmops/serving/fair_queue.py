"""The engine's queue: round-robin across API keys, first come first served within one.

With a FIFO queue, one key that sends 16 prompts x n=8 fills every batch slot ahead of
a key that sends one prompt. Here each take goes to the next key in turn, so a waiting
request of any key joins the running batch within one round of the keys waiting.
Hand-written: the standard library's queues have no per-owner ordering. The interface
is the part of ``queue.Queue`` the engine uses; ``None`` is its wake-up, taken only
when no request waits.
"""

from __future__ import annotations

import queue
import threading
from collections import deque


class FairQueue:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._by_owner: dict[str, deque] = {}
        self._turn: deque[str] = deque()  # owners with requests waiting, next first
        self._wakeups = 0

    def put(self, item) -> None:
        with self._cv:
            if item is None:
                self._wakeups += 1
            else:
                waiting = self._by_owner.get(item.owner)
                if waiting is None:
                    waiting = self._by_owner[item.owner] = deque()
                    self._turn.append(item.owner)
                waiting.append(item)
            self._cv.notify()

    def get(self, timeout: float | None = None):
        with self._cv:
            if not self._cv.wait_for(lambda: self._turn or self._wakeups, timeout):
                raise queue.Empty
            return self._take()

    def get_nowait(self):
        with self._cv:
            return self._take()

    def empty(self) -> bool:
        with self._cv:
            return not self._turn and not self._wakeups

    def __len__(self) -> int:
        with self._cv:
            return sum(len(q) for q in self._by_owner.values())

    def _take(self):
        if self._turn:
            owner = self._turn.popleft()
            waiting = self._by_owner[owner]
            item = waiting.popleft()
            if waiting:
                self._turn.append(owner)
            else:
                del self._by_owner[owner]
            return item
        if self._wakeups:
            self._wakeups -= 1
            return None
        raise queue.Empty
