"""Ingest stage 4, ``validate``: Great Expectations on the staged metrics and statistics."""

from __future__ import annotations

from pathlib import Path

from lmops import side_process
from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.stage_decide import DecideResult
from lmops.data.stage_read import ReadResult
from lmops.data.standard import Standard
from lmops.data.validate import ValidationOutcome, validate_dataset


def dataset_stats(read: ReadResult, dec: DecideResult) -> dict:
    n_q = sum(read.reasons.values()) + sum(dec.reasons.values())
    stats = {
        "input": read.n_input,
        "accepted": dec.n_accepted,
        "quarantined": n_q,
        "reject_rate": n_q / max(read.n_input, 1),
        "duplicate_rate": (dec.n_exact + dec.n_near) / max(read.n_input, 1),
        "accounting_gap": read.n_input - dec.n_accepted - n_q,
    }
    for lang, n in dec.langs.items():
        stats[f"share_{lang}"] = n / max(dec.n_accepted, 1)
    return stats


def stage_validate(
    staged: StagedVersion, std: Standard, cfg: DataConfig, stats: dict, data_docs: bool = True
) -> ValidationOutcome:
    """GX on the staged metrics, in the CLI's side process when it started one."""
    return side_process.call(validate_staged, staged.path, std, cfg.lang_mix, stats, data_docs)


def validate_staged(
    folder: Path, std: Standard, lang_mix: dict, stats: dict, data_docs: bool
) -> ValidationOutcome:
    """GX on the staged metrics; on the Ray path, on its per-partition statistics."""
    import pyarrow.parquet as pq

    per_partition = (folder / "partition_stats.parquet").exists()
    if per_partition:
        frame = pq.read_table(folder / "partition_stats.parquet").to_pandas()
    else:
        frame = pq.read_table(sorted(folder.glob("metrics-*.parquet"))).to_pandas()
    docs = folder / "data_docs" if data_docs else None
    return validate_dataset(frame, stats, std, lang_mix, docs_dir=docs, per_partition=per_partition)
