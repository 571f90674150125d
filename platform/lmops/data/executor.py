"""The local path's annotate executor: a process pool over the staged candidates.

What runs (``annotate_table``) is decided elsewhere. A pool of ``workers`` processes
maps batches in order, with a bounded window so memory stays flat whatever the corpus
size; its tasks are cut by bytes of text, not by rows (see :data:`TASK_BYTES`). With
``RAY_ADDRESS`` set, every stage runs on Ray instead (:mod:`lmops.data.ray_read`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lmops.data.ordered_pool import ordered_map
from lmops.data.signals import annotate_table
from lmops.data.standard import Standard

# Text bytes per pool task. Rows say little about work: in the installed-docs corpus
# one 2,000-row batch held 31 MB of text and its neighbours 3 MB, so a pool fed whole
# batches left one worker idle for most of the stage. Tasks of ~1 MB (a fraction of a
# second each) keep every worker busy to the end for little IPC.
TASK_BYTES = 1 << 20


def _batches(files: list[Path], rows: int) -> Iterator[pa.Table]:
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=rows):
            yield pa.Table.from_batches([batch])


def _split(table: pa.Table, target_bytes: int) -> Iterator[pa.Table]:
    """Runs of consecutive rows of ``table`` with about ``target_bytes`` of text each.

    A run ends with the first row at which its text reaches ``target_bytes``, so it
    exceeds the target by less than its last document. Runs are copied (``take``): a
    slice would pickle, and so ship to the worker, the buffers of the whole table.
    """
    n = table.num_rows
    sizes = pc.binary_length(table.column("text")).fill_null(0).to_numpy(zero_copy_only=False)
    ends = np.cumsum(sizes, dtype=np.int64)
    if n == 0 or ends[-1] <= target_bytes:
        yield table
        return
    start = 0
    while start < n:
        before = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, before + target_bytes, side="left")) + 1
        stop = min(max(stop, start + 1), n)
        yield table.take(np.arange(start, stop))
        start = stop


def map_local(files: list[Path], std: Standard, rows: int, workers: int) -> Iterator[pa.Table]:
    """Ordered ``annotate_table`` over batches, ``workers`` processes, bounded prefetch.

    With a pool, each batch is cut into tasks of about :data:`TASK_BYTES` of text and
    the results come back one table per task, in input order.
    """
    fn = partial(annotate_table, std=std)
    if workers <= 1:
        yield from map(fn, _batches(files, rows))
        return
    tasks = (table for batch in _batches(files, rows) for table in _split(batch, TASK_BYTES))
    yield from ordered_map(fn, tasks, workers)


def annotate(files: list[Path], std: Standard, rows: int, workers: int) -> Iterator[pa.Table]:
    yield from map_local(files, std, rows, workers or os.cpu_count() or 1)
