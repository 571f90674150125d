"""``fn`` over items in a local process pool, results in input order, memory bounded.

The two pooled ingest stages use it: annotate (Arrow tables, see :mod:`.executor`) and
read (markup files, see :func:`lmops.data.readers.read_sources`). At most
``workers * window_per_worker`` tasks are submitted and not yet yielded, so a slow
consumer or a huge input never piles results up in memory; a few tasks per worker keep
every worker busy while a slow task sits at the head of the window.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

WINDOW_PER_WORKER = 4


def ordered_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    *,
    local: Callable[[Any], bool] | None = None,
    window_per_worker: int = WINDOW_PER_WORKER,
) -> Iterator[Any]:
    """``fn(item)`` for each item, in order; ``workers`` spawn processes compute them.

    An item for which ``local(item)`` is true is computed in this process when its turn
    comes, while the pool works on the items after it. ``fn`` and the pooled items must
    be picklable. A worker's exception is raised here, at that item's turn; leaving the
    loop early cancels the tasks not yet started.
    """
    ctx = multiprocessing.get_context("spawn")  # fork would copy a threaded parent
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    window: deque = deque()  # (future, None) for a pooled item, (None, item) for a local one
    in_flight = 0
    it = iter(items)
    try:
        while True:
            while in_flight < workers * window_per_worker:
                item = next(it, _END)
                if item is _END:
                    break
                if local is not None and local(item):
                    window.append((None, item))
                else:
                    window.append((pool.submit(fn, item), None))
                    in_flight += 1
            if not window:
                return
            future, item = window.popleft()
            if future is None:
                yield fn(item)
            else:
                in_flight -= 1
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
