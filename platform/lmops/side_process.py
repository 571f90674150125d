"""A second process that imports a short command's heavy tail while the command starts.

A 50-record ``lmops ingest`` spends most of its wall time importing libraries one after
another on one core. Great Expectations alone takes 1.1 s on 2 cores, and it is needed
only near the end, to validate. :func:`start` spawns one worker process
(``concurrent.futures``, which carries calls, results and exceptions) that imports such
modules on the other core while the command reads and scores its records. :func:`call`
then runs a step there. While it waits, the caller runs its own pending warm-up jobs,
such as importing MLflow, which only it uses.

``lmops ingest`` starts it for every input; the library's ``ingest()`` starts one itself
for a large input, whose single-core read and decide stages leave the second core free
for those imports. Without :func:`start` (small inputs through the library, the other
commands), :func:`call` runs each step in the caller's process, so results never depend
on it. If the worker dies, the step is run again in the caller's process, with a
warning.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)

# What the ingest's validate and publish stages run there: GX and the plots.
INGEST_MODULES = (
    "lmops.data.validate",
    "great_expectations",
    "lmops.data.plots",
    "matplotlib.pyplot",
)

_pool: ProcessPoolExecutor | None = None
_meanwhile: Iterable[Callable[[], object]] = iter(())


def _warm(modules: Sequence[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle
    gc.set_threshold(10_000)  # as in the CLI: fewer full collections while importing
    for name in modules:
        importlib.import_module(name)
    # The imported libraries' objects live as long as the process: spare them the
    # collector, above all the full pass at exit (1.7 s measured for the CLI), which
    # ``stop()`` would wait for.
    gc.freeze()


def start(modules: Sequence[str], meanwhile: Iterable[Callable[[], object]] = ()) -> None:
    """Spawn the worker now; it imports ``modules`` in order.

    ``meanwhile``: jobs this process runs, in turn, while a later :func:`call` waits for
    the worker; those left when the command ends are skipped.
    """
    global _pool, _meanwhile
    if _pool is not None:
        return
    _pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded process
        initializer=_warm,
        initargs=(tuple(modules),),
    )
    _pool.submit(int)  # the pool starts its worker at the first submit: make that now
    _meanwhile = iter(meanwhile)


def started() -> bool:
    """Whether a worker is running (started by :func:`start` and not stopped)."""
    return _pool is not None


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in the worker if one was started, else here."""
    global _pool
    if _pool is None:
        return fn(*args, **kwargs)
    try:
        future = _pool.submit(fn, *args, **kwargs)
        while not future.done():
            job = next(_meanwhile, None)
            if job is None:
                break
            job()
        return future.result()
    except BrokenProcessPool as e:
        log.warning("side process failed (%s); running %s here", e, fn.__name__)
        stop()
        return fn(*args, **kwargs)


def abandon() -> None:
    """Stop the worker at once, even mid-import: for a command that fails before using it
    (:func:`stop` would wait for its imports to finish)."""
    if _pool is not None:
        kill = getattr(_pool, "kill_workers", None)  # Python 3.14+
        if kill is not None:
            kill()
        else:  # before 3.14 the executor offers no public way: its own process table
            for process in list(getattr(_pool, "_processes", {}).values()):
                process.kill()
    stop()


def stop() -> None:
    """Stop the worker (after the step it is running, if any)."""
    global _pool, _meanwhile
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
    _meanwhile = iter(())
