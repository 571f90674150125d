"""Ingest stage 3, ``decide``: reasons, exact and near dedup, in input order.

Near dedup also compares with the accepted documents of every published version (when
the standard says so); this stage saves this version's signatures for later ones.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.quarantine import quarantine_row, reason_family
from lmops.data.signatures import content_digest, row_digest
from lmops.data.stage_read import ReadResult
from lmops.data.standard import Standard
from lmops.text.pii import KINDS as PII_KINDS

PII_COLUMNS = tuple(f"pii_{k}" for k in PII_KINDS)


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


def _previous_signatures(datasets_root: Path, std: Standard, exclude: str, folder: Path):
    """(names, content keys, ``copy_into``) of every published version's accepted documents.

    Ordered by dedup rank (version, then content key; see ``cluster_dedup``), as the Ray
    path orders them. Signatures never sit in memory whole: shard by shard they are
    appended to a raw file in ``folder`` in load order; ``copy_into(target)`` writes them
    into ``target``'s first rows in rank order, a block of rows at a time, and removes
    the file.
    """
    from lmops.data.near_dedup import NUM_PERM
    from lmops.data.signatures import SHARD_ROWS, load_signature_shard, signature_shards

    shards = signature_shards(datasets_root, exclude) if std.against_previous else []
    names, keys, ranks, loaded = [], [], [], folder / "prev-load.tmp.u32"
    with open(loaded, "wb") as raw:
        for item in shards:
            t = load_signature_shard(item)
            names.append(np.array(t.column("name").to_pylist(), dtype=str))
            keys.append(t.column("key64").to_numpy())
            ranks.append(t.column("rank_hi").to_numpy())
            for blob in t.column("minhash").to_pylist():
                raw.write(blob)
    n = sum(len(k) for k in keys)
    key = np.concatenate(keys) if n else np.zeros(0, np.uint64)
    order = np.lexsort((key, np.concatenate(ranks))) if n else np.zeros(0, np.int64)

    def copy_into(target) -> None:
        if n:
            source = np.memmap(loaded, dtype=np.uint32, mode="r", shape=(n, NUM_PERM))
            for at in range(0, n, SHARD_ROWS):
                block = order[at : at + SHARD_ROWS]
                target[at : at + len(block)] = source[block]
            del source
        loaded.unlink()

    ranked = np.concatenate(names)[order] if n else np.array([], str)
    return ranked, key[order], copy_into


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
    prev_names, prev_key, copy_prev = _previous_signatures(
        datasets_root, std, read.version_id, staged.path
    )
    n_prev = len(prev_names)
    sigs = open_memmap(
        staged.path / "sigs.tmp.npy",
        mode="w+",
        dtype=np.uint32,
        shape=(max(n_prev + n, 1), NUM_PERM),
    )
    copy_prev(sigs)
    eligible = np.zeros(n_prev + n, dtype=bool)
    eligible[:n_prev] = True
    same_doc = np.zeros(n_prev + n, dtype=np.uint64)
    same_doc[:n_prev] = prev_key

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
    content = 0
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
        content += row_digest(row)
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
        content_digest(content),
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
