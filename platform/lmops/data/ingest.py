"""Ingest: stream sources through the record standard into a dataset version.

Every input record ends accepted or quarantined with a reason, and
``input == accepted + quarantined`` is checked before anything is published.
The version id is a content hash, so the same input gives the same version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fsspec

from lmops.config import DataConfig
from lmops.data import standard
from lmops.data.publish import StagedVersion
from lmops.data.readers import expand_sources, read_source_file
from lmops.data.schema import STANDARD_VERSION
from lmops.data.validate import ValidationOutcome, validate_dataset
from lmops.errors import DataStandardError, SourceError


@dataclass
class IngestReport:
    """The accounting of one ingest: what came in, what was kept, and why the rest was not."""

    version_id: str
    path: Path
    created: bool
    input: int
    accepted: int
    quarantined: int
    reasons: Counter = field(default_factory=Counter)
    langs: Counter = field(default_factory=Counter)
    accepted_bytes: int = 0
    validation: ValidationOutcome | None = None

    @property
    def balanced(self) -> bool:
        return self.input == self.accepted + self.quarantined

    def accounting_line(self) -> str:
        mark = "OK" if self.balanced else "MISMATCH"
        return (
            f"input {self.input} = accepted {self.accepted} + quarantined {self.quarantined} "
            f"[{mark}]"
        )


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with fsspec.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _reason_family(reason: str) -> str:
    """``schema:missing:text`` -> ``schema:missing``: the counting key for a reason."""
    return ":".join(reason.split(":")[:2])


def ingest(
    sources: list[str],
    cfg: DataConfig,
    datasets_root: Path,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Read, check, normalise, dedup, validate with GX and publish one dataset version."""
    import pandas as pd

    files = expand_sources(sources)
    try:
        file_hashes = {f: file_sha256(f) for f in files}
    except PermissionError as e:
        raise SourceError(f"{e.filename}: permission denied; fix its mode") from None
    version_hash = hashlib.sha256()
    data_cfg = cfg.model_dump(mode="json", exclude={"sources"})
    version_hash.update(json.dumps([STANDARD_VERSION, data_cfg], sort_keys=True).encode())
    for digest in sorted(file_hashes.values()):
        version_hash.update(digest.encode())

    staged = StagedVersion(datasets_root)
    seen: set[bytes] = set()
    reasons: Counter = Counter()
    langs: Counter = Counter()
    metrics = {"id": [], "doc_hash": [], "n_chars": [], "lang": []}
    n_input = n_accepted = n_dup = accepted_bytes = 0

    def quarantine(item, rule: str, record: str) -> None:
        reasons[_reason_family(rule)] += 1
        staged.quarantine.add(
            {
                "source_file": item.file,
                "line": item.line,
                "rule": _reason_family(rule),
                "reason": rule,
                "record": record[:2000],
            }
        )

    try:
        for path in files:
            for item in read_source_file(path, cfg.text_mode):
                n_input += 1
                if progress and n_input % 500 == 0:
                    progress(n_input)
                if item.error:
                    quarantine(item, f"parse:{item.error}", item.raw)
                    continue
                raw = json.dumps(item.payload, ensure_ascii=False, default=str)
                rec, why = standard.check_schema(item.payload, item.file, item.line)
                if why:
                    quarantine(item, why, raw)
                    continue
                text = standard.normalise(rec.text)
                why = standard.check_length(text, cfg.min_chars, cfg.max_chars)
                if why:
                    quarantine(item, why, raw)
                    continue
                h = standard.doc_hash(text)
                key = bytes.fromhex(h)
                if key in seen:
                    n_dup += 1
                    quarantine(item, "dedup:exact", raw)
                    continue
                seen.add(key)
                lang = rec.lang or standard.guess_lang(text)
                row = {
                    "id": rec.id,
                    "text": text,
                    "source": rec.source,
                    "lang": lang,
                    "license": rec.license,
                    "meta": rec.meta,
                    "doc_hash": h,
                }
                staged.accepted.add(row)
                version_hash.update(f"{rec.id}\0{h}\0{lang}\0{rec.source}\0{rec.license}".encode())
                version_hash.update(rec.meta.encode())
                for k in ("id", "doc_hash", "lang"):
                    metrics[k].append(row[k])
                metrics["n_chars"].append(len(text))
                langs[lang] += 1
                n_accepted += 1
                accepted_bytes += len(text.encode("utf-8"))

        n_quarantined = sum(reasons.values())
        version_id = "ds-" + version_hash.hexdigest()[:16]
        stats = {
            "input": n_input,
            "accepted": n_accepted,
            "quarantined": n_quarantined,
            "reject_rate": n_quarantined / max(n_input, 1),
            "duplicate_rate": n_dup / max(n_input, 1),
            "accounting_gap": n_input - n_accepted - n_quarantined,
        }
        outcome = validate_dataset(pd.DataFrame(metrics), stats)
        manifest = {
            "version_id": version_id,
            "standard_version": STANDARD_VERSION,
            "expectation_suite": outcome.suite,
            "config": data_cfg,
            "sources": [{"path": f, "sha256": file_hashes[f]} for f in files],
            "counts": {
                **stats,
                "reasons": dict(sorted(reasons.items())),
                "langs": dict(sorted(langs.items())),
                "accepted_bytes": accepted_bytes,
            },
            "validation": {"success": outcome.success, "failures": outcome.failures},
        }
        if not outcome.success:
            rejected = datasets_root / f".rejected-{version_id}"
            staged.finish(f".rejected-{version_id}", manifest)
            raise DataStandardError(
                f"dataset failed the data standard ({outcome.summary()}); nothing was published. "
                f"Inspect {rejected}/quarantine-*.parquet and fix the sources or the standard."
            )
        path, created = staged.finish(version_id, manifest)
    except BaseException:
        staged.discard()
        raise
    return IngestReport(
        version_id,
        path,
        created,
        n_input,
        n_accepted,
        n_quarantined,
        reasons,
        langs,
        accepted_bytes,
        outcome,
    )


def load_manifest(version_path: Path) -> dict:
    return json.loads((version_path / "manifest.json").read_text(encoding="utf-8"))


def iter_texts(version_path: Path, split: Callable[[str], bool] | None = None):
    """Yield (doc_hash, text) of a published version, optionally filtered by hash."""
    import pyarrow.parquet as pq

    manifest = load_manifest(version_path)
    for shard in manifest["shards"]:
        pf = pq.ParquetFile(version_path / shard)
        for batch in pf.iter_batches(columns=["doc_hash", "text"], batch_size=1024):
            for h, t in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                if split is None or split(h):
                    yield h, t


def remove_rejected(datasets_root: Path) -> None:
    for p in datasets_root.glob(".rejected-*"):
        shutil.rmtree(p, ignore_errors=True)


__all__ = ["IngestReport", "ingest", "iter_texts", "load_manifest", "remove_rejected"]
