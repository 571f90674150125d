"""Ingest: stream sources through the data standard into a dataset version.

:func:`ingest` runs the stages in order; each is testable alone, and the Prefect flow
(``pipelines/ingest.py``) passes a ``run_stage`` that runs each as a task:

0. ``hash``     hash the source files: the version id, and a cache hit ends here
1. ``read``     parse and schema-check every record -> candidates (Parquet, staged)
2. ``annotate`` normalise, language id, quality, toxicity, PII, MinHash (parallel)
3. ``decide``   reasons, exact and near dedup (also against earlier versions)
4. ``validate`` Great Expectations on per-document metrics and dataset statistics
5. ``publish``  manifest, plots, Data Docs, one atomic rename

Every input record ends accepted or quarantined with a reason, and
``input == accepted + quarantined`` is checked before anything is published.
A stage may be retried: it replaces, never appends to, what an earlier attempt wrote.
The version id is a content hash: the same input gives the same version.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from lmops import side_process
from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.quarantine import HEAD_CHARS, quarantine_row, reason_family
from lmops.data.readers import MAX_RECORD_PREVIEW, expand_sources, read_sources
from lmops.data.standard import Standard, load_standard, profile_hint, records
from lmops.data.validate import ValidationOutcome, validate_dataset
from lmops.errors import DataStandardError, SourceError
from lmops.progress import reporter
from lmops.text.pii import KINDS as PII_KINDS

CANDIDATE_ROWS = 20_000
# Input size from which the library's ingest() starts a side process for GX (see there).
SIDE_PROCESS_BYTES = 8 << 20
# DataConfig fields that do not change what an ingest publishes.
NOT_IN_VERSION_ID = {"sources", "workers", "batch_rows", "val_fraction"}
PII_COLUMNS = tuple(f"pii_{k}" for k in PII_KINDS)


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
    stage_seconds: dict[str, float] = field(default_factory=dict)
    input_bytes: int = 0
    cached: bool = False  # the version was already published: nothing ran past ``hash``

    @property
    def balanced(self) -> bool:
        return self.input == self.accepted + self.quarantined

    def accounting_line(self) -> str:
        mark = "OK" if self.balanced else "MISMATCH"
        return (
            f"input {self.input} = accepted {self.accepted} + quarantined {self.quarantined} "
            f"[{mark}]"
        )


@dataclass
class ReadResult:
    version_id: str
    files: list[str]
    file_hashes: dict[str, str]
    input_bytes: int
    n_input: int
    n_candidates: int
    reasons: Counter


@dataclass
class DecideResult:
    version_id: str
    content_digest: str
    n_accepted: int
    n_exact: int
    n_near: int
    reasons: Counter
    langs: Counter
    accepted_bytes: int
    pii_redactions: dict[str, int]
    c4_lines_removed: int | None = None  # None: the annotated rows do not carry the count


class RejectedVersion(DataStandardError):
    """The dataset failed its standard: nothing was published; the evidence is at ``path``."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path

    def __reduce__(self):  # picklable with ``path``, as Prefect may store a task's error
        return type(self), (str(self), self.path)


def file_sha256(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with fsspec.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# --------------------------------------------------------------------------- stage 1


def version_id_for(std: Standard, cfg: DataConfig, files: list[str], hashes: dict[str, str]) -> str:
    """The version id: a hash of the resolved standard, the ingest config and the sources.

    Computed before any record is processed, so an unchanged input is recognised at
    once and its published version reused (no duplicate, and the ingest is skipped).
    ``std.digest`` covers every threshold, word list and the GX suite; settings that
    only later stages read (the validation split) or that change speed, not output,
    are left out.
    """
    h = hashlib.sha256()
    data_cfg = cfg.model_dump(mode="json", exclude=NOT_IN_VERSION_ID)
    h.update(json.dumps([std.name, std.digest, data_cfg], sort_keys=True).encode())
    for f in files:
        h.update(hashes[f].encode())
    return "ds-" + h.hexdigest()[:16]


@dataclass(frozen=True)
class SourceSet:
    """The files behind the sources, hashed once: the version id and the read both use it."""

    files: list[str]
    hashes: dict[str, str]
    total_bytes: int


def hash_sources(sources: list[str]) -> SourceSet:
    files = expand_sources(sources)
    hashes, total = {}, 0
    for f in files:
        try:
            hashes[f], size = file_sha256(f)
        except PermissionError:
            raise SourceError(f"{f}: permission denied; fix its mode") from None
        total += size
    return SourceSet(files, hashes, total)


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
        cut = False
        if item.error:  # the reader keeps a preview of the raw bytes
            why, record = f"parse:{item.error}", item.raw
            cut = len(item.raw) >= MAX_RECORD_PREVIEW
        else:
            record = json.dumps(item.payload, ensure_ascii=False, default=str)
            rec, why = records.check_schema(item.payload, item.file, item.line)
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


# --------------------------------------------------------------------------- stage 2


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


# --------------------------------------------------------------------------- stage 3


def _previous_signatures(datasets_root: Path, std: Standard, exclude: str):
    """(doc-hash keys, signature arrays) of every published version's accepted documents."""
    keys, sigs = [], []
    if std.against_previous:
        for p in sorted(datasets_root.glob("ds-*/minhash_keys.npy")):
            if p.parent.name != exclude:
                keys.append(np.load(p))
                sigs.append(np.load(p.with_name("minhash_sigs.npy"), mmap_mode="r"))
    return keys, sigs


def _key64(doc_hash: str) -> int:
    return int(doc_hash[:16], 16)


def stage_decide(
    staged: StagedVersion, std: Standard, cfg: DataConfig, read: ReadResult, datasets_root: Path
) -> DecideResult:
    """Apply reasons, exact and near dedup in input order; write shards and metrics.

    Two streaming passes over the annotated rows with the dedup decided in between on
    flat arrays (``minhash_dedup``), so memory grows by tens of bytes per document.
    """
    import pyarrow.parquet as pq
    from numpy.lib.format import open_memmap

    from lmops.data.minhash_dedup import resolve
    from lmops.data.near_dedup import BANDS, NUM_PERM, ROWS
    from lmops.data.standard.schema import METRICS_SCHEMA

    files = sorted(staged.path.glob("annotated-*.parquet"))
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    # Lines the C4 filter took out of each text: summed where annotate writes the column.
    has_c4 = bool(files) and "c4_lines_removed" in pq.ParquetFile(files[0]).schema_arrow.names
    prev_keys, prev_sigs = _previous_signatures(datasets_root, std, read.version_id)
    n_prev = sum(len(k) for k in prev_keys)
    sigs = open_memmap(
        staged.path / "sigs.tmp.npy",
        mode="w+",
        dtype=np.uint32,
        shape=(max(n_prev + n, 1), NUM_PERM),
    )
    at = 0
    for block in prev_sigs:
        sigs[at : at + len(block)] = block
        at += len(block)
    eligible = np.zeros(n_prev + n, dtype=bool)
    eligible[:n_prev] = True
    same_doc = np.zeros(n_prev + n, dtype=np.uint64)
    same_doc[:n_prev] = [_key64(k) for keys in prev_keys for k in keys.astype(str)]
    prev_names = np.concatenate(prev_keys).astype(str) if prev_keys else np.array([], str)

    def rows():
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=cfg.batch_rows):
                yield from batch.to_pylist()

    # Pass 1: what each row is, its content key and its signature.
    for i, row in enumerate(rows(), start=n_prev):
        same_doc[i] = _key64(row["doc_hash"])
        if row["reason"] is None:
            eligible[i] = True
            if row["minhash"]:
                sigs[i] = np.frombuffer(row["minhash"], dtype=np.uint32)
    exact = np.zeros(n_prev + n, dtype=bool)
    if std.exact_dedup:
        cur = np.flatnonzero(eligible[n_prev:]) + n_prev
        order = cur[np.argsort(same_doc[cur], kind="stable")]
        exact[order[1:][same_doc[order[1:]] == same_doc[order[:-1]]]] = True
    dup_of = np.full(n_prev + n, -1, dtype=np.int64)
    if std.near_dedup:
        dup_of = resolve(sigs, eligible & ~exact, n_prev, same_doc, BANDS, ROWS, std.min_jaccard)

    # Pass 2: write the decisions in input order.
    accepted = staged.accepted()
    quarantine = staged.quarantine("3-decide")
    metrics = staged.writer("metrics", METRICS_SCHEMA, 10**12)
    reasons, langs, pii = Counter(), Counter(), Counter()
    c4_lines = 0
    content = hashlib.sha256()
    kept = array("q")  # compact: 8 bytes per accepted document
    kept_keys = bytearray()  # 40 bytes per accepted document
    n_acc = acc_bytes = 0
    metric_cols = [f.name for f in METRICS_SCHEMA]
    for i, row in enumerate(rows(), start=n_prev):
        why = row["reason"]
        if why is None and exact[i]:
            why = "dedup:exact"
        elif why is None and dup_of[i] >= 0:
            j = dup_of[i]
            why = f"dedup:near:{prev_names[j] if j < n_prev else f'{int(same_doc[j]):016x}'}"
        if why:
            reasons[reason_family(why)] += 1
            quarantine.add(
                quarantine_row(
                    row["file"], row["line"], why, row["record"], doc_pii_hits=row["pii_hits"]
                )
            )
            continue
        accepted.add(
            {k: row[k] for k in ("id", "text", "source", "lang", "license", "meta", "doc_hash")}
        )
        metrics.add({k: row[k] for k in metric_cols})
        content.update(
            f"{row['id']}\0{row['doc_hash']}\0{row['lang']}\0{row['source']}"
            f"\0{row['license']}\0{row['meta']}\0{row['text']}".encode()
        )
        langs[row["lang"]] += 1
        for k in PII_COLUMNS:
            if row[k]:
                pii[k[4:]] += row[k]
        c4_lines += row.get("c4_lines_removed") or 0
        kept.append(i)
        kept_keys.extend(row["doc_hash"].encode())
        n_acc += 1
        acc_bytes += len(row["text"].encode("utf-8"))
    for w in (accepted, quarantine, metrics):
        w.close()
    _save_signatures(staged.path, sigs, np.asarray(kept, dtype=np.int64), bytes(kept_keys))
    del sigs
    (staged.path / "sigs.tmp.npy").unlink()
    n_exact = int(exact.sum())
    n_near = int((dup_of[n_prev:] >= 0).sum())
    return DecideResult(
        read.version_id,
        content.hexdigest(),
        n_acc,
        n_exact,
        n_near,
        reasons,
        langs,
        acc_bytes,
        dict(pii),
        c4_lines if has_c4 else None,
    )


def _save_signatures(folder: Path, sigs, kept: np.ndarray, keys: bytes) -> None:
    """This version's accepted documents' keys and signatures, for later versions' dedup."""
    from numpy.lib.format import open_memmap

    out = open_memmap(
        folder / "minhash_sigs.npy", mode="w+", dtype=np.uint32, shape=(len(kept), sigs.shape[1])
    )
    for start in range(0, len(kept), 65536):
        chunk = kept[start : start + 65536]
        out[start : start + len(chunk)] = sigs[chunk]
    out.flush()
    del out
    np.save(folder / "minhash_keys.npy", np.frombuffer(keys, dtype="S40"))


# --------------------------------------------------------------------------- stages 4, 5


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
    import pyarrow.parquet as pq

    frame = pq.read_table(sorted(folder.glob("metrics-*.parquet"))).to_pandas()
    return validate_dataset(
        frame, stats, std, lang_mix, docs_dir=folder / "data_docs" if data_docs else None
    )


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


def run_directly(name: str, fn: Callable, *args, **kwargs) -> Any:
    """The default ``run_stage``: call the stage in this process, once."""
    return fn(*args, **kwargs)


def ingest(
    sources: list[str],
    cfg: DataConfig,
    datasets_root: Path,
    data_docs: bool = True,
    run_stage: Callable[..., Any] = run_directly,
) -> IngestReport:
    """Hash the sources, then read -> annotate -> decide -> validate -> publish.

    ``run_stage(name, fn, *args, **kwargs)`` runs each stage and returns its result; the
    Prefect flow passes one that runs the stage as a task with that stage's retries.
    An input already published returns its version (``cached``) after ``hash``. A
    dataset that fails the standard raises :class:`RejectedVersion`.
    """
    std = load_standard(cfg)
    times: dict[str, float] = {}

    def stage(name: str, fn: Callable, *args) -> Any:
        t = time.perf_counter()
        out = run_stage(name, fn, *args)
        times[name] = time.perf_counter() - t
        return out

    src = stage("hash", hash_sources, sources)
    existing = datasets_root / version_id_for(std, cfg, src.files, src.hashes)
    if (existing / "manifest.json").exists():
        return report_from_manifest(existing, False, None, {}, cached=True)
    # On a large input, GX and matplotlib import in a side process, on the core that
    # reading (one core) leaves free, rather than here after decide: 2.4 s less on 50 MB.
    # (Starting the annotate pool then too was measured slower: four processes on two
    # cores while reading.) Small inputs skip it, as a process per call would cost more
    # than it saves; `lmops ingest` starts one for every input.
    own_side_process = src.total_bytes >= SIDE_PROCESS_BYTES and not side_process.started()
    staged = StagedVersion(datasets_root)
    try:
        if own_side_process:
            side_process.start(side_process.INGEST_MODULES)
        with reporter().task("ingest: records read") as advance:
            read = stage("read", stage_read, src, cfg, std, staged, advance)
        with reporter().task("ingest: documents scored", total=read.n_candidates) as advance:
            stage("annotate", stage_annotate, staged, std, cfg, read.n_candidates, advance)
        # A stage keeps its input (a retry reads it again); it goes once the next stage is done.
        staged.drop("candidates")
        dec = stage("decide", stage_decide, staged, std, cfg, read, datasets_root)
        staged.drop("annotated")
        stats = dataset_stats(read, dec)
        with reporter().task("ingest: Great Expectations"):
            outcome = stage("validate", stage_validate, staged, std, cfg, stats, data_docs)
        manifest = build_manifest(std, cfg, read, dec, stats, outcome, dict(times))
        path, created = stage("publish", stage_publish, staged, manifest, outcome, datasets_root)
    except BaseException:
        staged.discard()
        raise
    finally:
        if own_side_process:
            side_process.stop()
    return report_from_manifest(path, created, outcome, times)


def report_from_manifest(
    path: Path, created: bool, outcome, times: dict, cached: bool = False
) -> IngestReport:
    m = load_manifest(path)
    c = m["counts"]
    return IngestReport(
        m["version_id"],
        path,
        created,
        c["input"],
        c["accepted"],
        c["quarantined"],
        Counter(c["reasons"]),
        Counter(c["langs"]),
        c["accepted_bytes"],
        outcome,
        times,
        c.get("input_bytes", 0),
        cached,
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
