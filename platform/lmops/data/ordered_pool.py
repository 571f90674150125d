"""``fn`` over items in a local process pool, results in input order, memory bounded.

The two pooled ingest stages use it: annotate (Arrow tables, see :mod:`.executor`) and
read (markup files, see :func:`lmops.data.sources.read_sources`). At most
``workers * window_per_worker`` tasks are submitted and not yet yielded, so a slow
consumer or a huge input never piles results up in memory; a few tasks per worker keep
every worker busy while a slow task sits at the head of the window.

Workers are forked from a fork server that has imported and warmed up the annotate stage
once (:mod:`lmops.data.worker_warmup`: lingua's models, spaCy, jieba's dictionary, the
toxicity arrays), instead of each spawned worker importing and loading all of it again:
about 1.5 s of CPU per worker, and 5% of a 50 MB ingest's wall on 2 cores. The fork
server is a fresh interpreter (not a fork of this process, whose threads a fork would
copy), started at the first pool and kept until this process exits. Each worker takes this
process's working directory and ``sys.path`` when it starts, but the environment variables
of the moment the fork server started. Where there is no fork server (Windows), workers
are spawned.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

WINDOW_PER_WORKER = 4
PRELOAD = ["lmops.data.worker_warmup"]


@dataclass(frozen=True)
class Local:
    """An item :func:`ordered_map` hands back for the caller to process itself."""

    item: Any


def _context():
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # read when the server starts; later calls are no-ops
    return ctx


def ordered_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    *,
    local: Callable[[Any], bool] | None = None,
    window_per_worker: int = WINDOW_PER_WORKER,
) -> Iterator[Any]:
    """``fn(item)`` for each item, in order; ``workers`` processes compute them.

    An item for which ``local(item)`` is true is not sent to the pool: ``Local(item)`` is
    yielded at its turn, for the caller to process (a large file, streamed) while the pool
    works on the items after it. ``fn`` and the pooled items must be picklable. A worker's
    exception is raised here, at that item's turn; leaving the loop early cancels the
    tasks not yet started.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
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
                yield Local(item)
            else:
                in_flight -= 1
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
