"""Ingest stage 1, ``read``: parse every record and check it against schema v1.

Records that parse and pass the schema become candidates (staged Parquet); the rest
are quarantined with a reason naming file and line.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.quarantine import HEAD_CHARS, quarantine_row, reason_family
from lmops.data.readers import MAX_RECORD_PREVIEW
from lmops.data.sources import read_sources
from lmops.data.stage_hash import SourceSet, version_id_for
from lmops.data.standard import Standard, records

# Rows per staged Parquet file of the read and annotate stages.
CANDIDATE_ROWS = 20_000


@dataclass
class ReadResult:
    version_id: str
    files: list[str]
    file_hashes: dict[str, str]
    input_bytes: int
    n_input: int
    n_candidates: int
    reasons: Counter


def check_item(item) -> tuple:
    """(record, its JSON preview, reason or None, preview cut) of one item as read."""
    if item.error:  # the reader keeps a preview of the raw bytes
        return None, item.raw, f"parse:{item.error}", len(item.raw) >= MAX_RECORD_PREVIEW
    record = json.dumps(item.payload, ensure_ascii=False, default=str)
    rec, why = records.check_schema(item.payload, item.file, item.line)
    return rec, record, why, False


def stage_read(
    src: SourceSet,
    cfg: DataConfig,
    std: Standard,
    staged: StagedVersion,
    progress: Callable[[int], None] | None = None,
) -> ReadResult:
    """Parse every record and check it against schema v1; bad ones are quarantined."""
    from lmops.data.standard.schema import CANDIDATE_SCHEMA

    files, hashes, total = src.files, src.hashes, src.total_bytes
    out = staged.writer("candidates", CANDIDATE_SCHEMA, CANDIDATE_ROWS)
    quarantine = staged.quarantine("1-read")
    reasons: Counter = Counter()
    seen_ids: set[str] = set()
    n_input = n_cand = 0
    workers = cfg.workers or os.cpu_count() or 1
    for item in read_sources(files, cfg.text_mode, code_blocks=std.code_blocks, workers=workers):
        n_input += 1
        if progress and n_input % 1000 == 0:
            progress(n_input)
        rec, record, why, cut = check_item(item)
        if not why and rec.id in seen_ids:
            why = f"schema:duplicate_id:{rec.id[:80]}"
        if why:
            reasons[reason_family(why)] += 1
            quarantine.add(quarantine_row(item.file, item.line, why, record, cut))
            continue
        seen_ids.add(rec.id)
        n_cand += 1
        out.add(
            {
                "id": rec.id,
                "text": rec.text,
                "source": rec.source,
                "license": rec.license,
                "meta": rec.meta,
                "file": item.file,
                "line": item.line,
                "record": record[:HEAD_CHARS],
            }
        )
    out.close()
    quarantine.close()
    return ReadResult(
        version_id_for(std, cfg, files, hashes), files, hashes, total, n_input, n_cand, reasons
    )
