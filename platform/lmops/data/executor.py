"""Where the per-document stage runs: a local process pool, or Ray Data on a cluster.

What runs (``annotate_table``) is decided elsewhere; this module only decides
where, like datatrove's executors. ``RAY_ADDRESS`` selects Ray Data; otherwise a
pool of ``workers`` processes maps batches in order, with a bounded window so
memory stays flat whatever the corpus size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lmops.data.signals import annotate_table
from lmops.data.standard import Standard


def _batches(files: list[Path], rows: int) -> Iterator[pa.Table]:
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=rows):
            yield pa.Table.from_batches([batch])


def map_local(files: list[Path], std: Standard, rows: int, workers: int) -> Iterator[pa.Table]:
    """Ordered ``annotate_table`` over batches, ``workers`` processes, bounded prefetch."""
    fn = partial(annotate_table, std=std)
    if workers <= 1:
        yield from map(fn, _batches(files, rows))
        return
    ctx = __import__("multiprocessing").get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        window: deque = deque()
        for table in _batches(files, rows):
            window.append(pool.submit(fn, table))
            if len(window) >= workers * 2:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def map_ray(files: list[Path], std: Standard, rows: int) -> Iterator[pa.Table]:
    """The same function through Ray Data (``RAY_ADDRESS`` set): order preserved.

    The staging folder must be on storage every Ray node can read (a shared
    ``LMOPS_HOME``), as with any Ray Data job reading files.
    """
    import ray.data

    from lmops.ray_runtime import ensure_ray

    # The one entry point: it passes the runtime environment (MLflow and Prefect
    # credentials, GX analytics off) to the workers that run annotate_table.
    ensure_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.read_parquet([str(f) for f in files])
    ds = ds.map_batches(
        annotate_table, fn_kwargs={"std": std}, batch_format="pyarrow", batch_size=rows
    )
    yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)


def annotate(files: list[Path], std: Standard, rows: int, workers: int) -> Iterator[pa.Table]:
    if os.environ.get("RAY_ADDRESS"):
        yield from map_ray(files, std, rows)
    else:
        yield from map_local(files, std, rows, workers or os.cpu_count() or 1)
