"""Earlier versions' MinHash signatures, in shards, for dedup against what is published.

A version keeps the keys and signatures of its accepted documents: the local path
writes ``minhash_keys.npy`` + ``minhash_sigs.npy``, the Ray path ``signatures-*.parquet``
(``doc_hash``, ``minhash``), one file per writing task. Both paths read both kinds
through :func:`signature_shards` (a list of small work items) and
:func:`load_signature_shard` (one item as rows), so on a cluster the signatures are a
Ray dataset read by the workers, never loaded into the driver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from lmops.data.cluster_dedup import NODE_SCHEMA, PREV_RANK_BASE, key64, prev_node_ids
from lmops.data.store import npy_len, npy_rows, open_parquet, read_parquet
from lmops.home import as_path

SHARD_ROWS = 65_536
CONTENT_DIGEST = "sha256-sum-v1"  # how ``content_digest`` is computed (see content_digest)


def signature_shards(datasets_root: Path, exclude: str) -> list[dict]:
    """One item per block of rows of every published version's signatures but ``exclude``.

    Versions are ranked by id; that rank is part of each document's dedup rank.
    """
    shards = []
    versions = sorted(
        p.parent
        for p in datasets_root.glob("ds-*/manifest.json")
        if p.parent.name != exclude
        and ((p.parent / "minhash_keys.npy").exists() or any(p.parent.glob("signatures-*")))
    )
    for rank, folder in enumerate(versions):
        keys = folder / "minhash_keys.npy"
        if keys.exists():
            n = npy_len(keys)
            for start in range(0, n, SHARD_ROWS):
                shards.append(
                    {"rank": rank, "path": str(keys), "start": start, "stop": start + SHARD_ROWS}
                )
            continue
        for f in sorted(folder.glob("signatures-*.parquet")):
            if open_parquet(f).metadata.num_rows:
                shards.append({"rank": rank, "path": str(f), "start": 0, "stop": -1})
    return shards


def load_signature_shard(item: dict) -> pa.Table:
    """The rows of one shard as dedup nodes (:data:`~lmops.data.cluster_dedup.NODE_SCHEMA`)."""
    path = as_path(item["path"])
    if path.suffix == ".npy":
        start, stop = item["start"], item["stop"]
        names = npy_rows(path, start, stop).astype(str)
        sigs = npy_rows(path.with_name("minhash_sigs.npy"), start, stop)
        blobs = [row.tobytes() for row in np.ascontiguousarray(sigs)]
    else:
        table = read_parquet(path, columns=["doc_hash", "minhash"])
        names = np.array(table.column("doc_hash").to_pylist(), dtype=str)
        blobs = table.column("minhash").to_pylist()
    keys = key64(names)
    rank = int(item["rank"])
    return pa.table(
        {
            "node": prev_node_ids(rank, keys),
            "rank_hi": np.full(len(keys), PREV_RANK_BASE + rank, dtype=np.int64),
            "rank_lo": keys,
            "key64": keys,
            "name": names.tolist(),
            "minhash": pa.array(blobs, pa.binary()),
        },
        schema=NODE_SCHEMA,
    )


def load_signature_batch(batch: pa.Table) -> pa.Table:
    """``map_batches`` form of :func:`load_signature_shard` over a batch of items."""
    tables = [load_signature_shard(item) for item in batch.to_pylist()]
    return pa.concat_tables(tables) if tables else NODE_SCHEMA.empty_table()


def row_digest(row: dict) -> int:
    """One accepted document's contribution to the version's content digest."""
    import hashlib

    blob = (
        f"{row['id']}\0{row['doc_hash']}\0{row['lang']}\0{row['source']}"
        f"\0{row['license']}\0{row['meta']}\0{row['text']}"
    )
    return int.from_bytes(hashlib.sha256(blob.encode()).digest(), "big")


def content_digest(total: int) -> str:
    """The content digest from the sum of every row's :func:`row_digest`.

    A sum mod 2**256 of per-document SHA-256s (a multiset hash): it does not depend on
    the order rows were seen in, so workers sum their own partitions and the driver adds
    O(partitions) numbers; the local path gives the same value.
    """
    return f"{total % (1 << 256):064x}"
