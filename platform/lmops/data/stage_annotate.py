"""Ingest stage 2, ``annotate``: every signal and reason of every candidate.

Normalisation, language id, quality, toxicity, PII and MinHash, computed by
:func:`lmops.data.executor.annotate` (in parallel on large inputs).
"""

from __future__ import annotations

from collections.abc import Callable

from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.stage_read import CANDIDATE_ROWS
from lmops.data.standard import Standard


def stage_annotate(
    staged: StagedVersion,
    std: Standard,
    cfg: DataConfig,
    n_candidates: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute every signal and reason; writes ``annotated-*.parquet`` in input order."""
    from lmops.data.executor import annotate
    from lmops.data.signals import ANNOTATED_SCHEMA

    files = sorted(staged.path.glob("candidates-*.parquet"))
    # A pool costs seconds to start: small inputs run in-process.
    workers = 1 if n_candidates < 2 * cfg.batch_rows else cfg.workers
    out = staged.writer("annotated", ANNOTATED_SCHEMA, CANDIDATE_ROWS)
    done = 0
    for table in annotate(files, std, cfg.batch_rows, workers):
        for batch in table.to_batches():
            out.write_batch(batch)
        done += table.num_rows
        if progress:
            progress(done)
    out.close()
    return done
