"""Ingest stage 5, ``publish``: the manifest, plots and one atomic rename.

A version that failed its standard is not published: its folder is parked as
``.rejected-<id>`` with the evidence, and :class:`RejectedVersion` is raised.
"""

from __future__ import annotations

import time
from pathlib import Path

from lmops import side_process
from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.stage_decide import DecideResult
from lmops.data.stage_read import ReadResult
from lmops.data.standard import Standard, profile_hint
from lmops.data.validate import ValidationOutcome
from lmops.errors import DataStandardError


class RejectedVersion(DataStandardError):
    """The dataset failed its standard: nothing was published; the evidence is at ``path``."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path

    def __reduce__(self):  # picklable with ``path``, as Prefect may store a task's error
        return type(self), (str(self), self.path)


def build_manifest(
    std: Standard,
    cfg: DataConfig,
    read: ReadResult,
    dec: DecideResult,
    stats: dict,
    outcome: ValidationOutcome,
    stage_seconds: dict,
) -> dict:
    reasons = read.reasons + dec.reasons
    return {
        "version_id": dec.version_id,
        "content_digest": dec.content_digest,
        "standard": std.summary(),
        "standard_version": std.version,
        "expectation_suite": outcome.suite,
        "config": cfg.model_dump(mode="json", exclude={"sources"}),
        "sources": [{"path": f, "sha256": read.file_hashes[f]} for f in read.files],
        "counts": {
            **stats,
            "stages": {
                "read": {"in": read.n_input, "out": read.n_candidates},
                "annotate+decide": {
                    "in": read.n_candidates,
                    "out": dec.n_accepted,
                    "exact_duplicates": dec.n_exact,
                    "near_duplicates": dec.n_near,
                },
            },
            "reasons": dict(sorted(reasons.items())),
            "langs": dict(sorted(dec.langs.items())),
            "accepted_bytes": dec.accepted_bytes,
            "input_bytes": read.input_bytes,
            "pii_redactions": dec.pii_redactions,
            **({} if dec.c4_lines_removed is None else {"c4_lines_removed": dec.c4_lines_removed}),
        },
        "validation": {
            "success": outcome.success,
            "failures": outcome.failures,
            "evaluated": outcome.evaluated,
        },
        "stage_seconds": stage_seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def stage_publish(
    staged: StagedVersion, manifest: dict, outcome: ValidationOutcome, datasets_root: Path
) -> tuple[Path, bool]:
    """Publish atomically, or park a failing version as ``.rejected-<id>`` and raise
    :class:`RejectedVersion`."""
    from lmops.data.plots import write_plots

    side_process.call(write_plots, staged.path, manifest)
    version_id = manifest["version_id"]
    if manifest["counts"]["accounting_gap"] != 0:
        staged.discard()
        raise DataStandardError(f"accounting mismatch for {version_id}: {manifest['counts']}")
    if not outcome.success:
        rejected, _ = staged.finish(f".rejected-{version_id}", manifest)
        raise RejectedVersion(
            f"dataset failed the data standard ({outcome.summary()}); nothing was published. "
            f"Inspect {rejected}/quarantine-*.parquet and fix the sources, or choose the "
            f"profile that fits them. {profile_hint(manifest['standard'])}",
            rejected,
        )
    return staged.finish(version_id, manifest)
