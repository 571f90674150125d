"""Dedup cut at its shuffles: the partition functions the Ray path runs for each step.

The local path (:mod:`lmops.data.stage_decide`, :mod:`lmops.data.minhash_dedup`) decides
on flat arrays in one process. On a cluster the same rule runs as hash-partitioned
steps of Ray Data, each a pure function of one partition, defined here:

1. :func:`mark_duplicate_ids` (partition by record id): the first record of an id wins.
2. :func:`mark_exact` (partition by content key): the first copy of a text is kept.
3. :func:`band_rows` then :func:`bucket_pairs` (partition by LSH band key): candidate
   pairs, each document paired with up to ``MAX_RUN_PAIRS`` earlier members of its bucket.
4. :func:`verify_pairs`: a pair is an edge when the estimated Jaccard similarity reaches
   ``min_jaccard`` and the texts differ (the same text in an earlier version is kept).
5. Connected components of the edges (:mod:`lmops.data.connected_components`).
6. :func:`resolve_component` (partition by component): "keep the first of each cluster":
   in rank order, a document is a near copy of the first *kept* earlier neighbour.

Step 6 gives what the local rule gives because a decision depends only on the edges of
a document's own component.

**Rank (the tie-break).** Documents of earlier versions come first, version by version
(sorted by version id), by content key within one; then this input's, by file and by
record within the file. The kept copy of a cluster is the first by rank, so a copy
already published is always the one kept. Both paths rank the same way.

**Node ids.** This input's documents: ``file_index << 32 | record_index`` (non-negative,
increasing with rank). Earlier versions' documents: a 63-bit hash of (version, key)
with the sign bit set, so ``node < 0`` means "already published, always kept".
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmops.data.minhash_dedup import MAX_RUN_PAIRS, band_keys
from lmops.data.near_dedup import BANDS, NUM_PERM, ROWS

PREV_RANK_BASE = -(1 << 40)  # rank_hi of earlier versions' documents: below every file index
_MASK63 = np.uint64((1 << 63) - 1)

NODE_SCHEMA = pa.schema(
    [
        ("node", pa.int64()),
        ("rank_hi", pa.int64()),
        ("rank_lo", pa.uint64()),
        ("key64", pa.uint64()),
        ("name", pa.string()),  # what a near copy's reason names: the kept document
        ("minhash", pa.binary()),
    ]
)
EDGE_SCHEMA = pa.schema(
    [
        ("later", pa.int64()),
        ("earlier", pa.int64()),
        ("l_hi", pa.int64()),
        ("l_lo", pa.uint64()),
        ("e_hi", pa.int64()),
        ("e_lo", pa.uint64()),
        ("e_name", pa.string()),
    ]
)
VERDICT_SCHEMA = pa.schema([("node", pa.int64()), ("near_of", pa.string())])


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mix (SplitMix64's finaliser): spreads keys over partitions."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) of each uint64 key."""
    return (splitmix64(keys) % np.uint64(partitions)).astype(np.int64)


def key64(doc_hashes) -> np.ndarray:
    """The content key of each document: the first 16 hex digits of its doc_hash."""
    return np.array([int(h[:16], 16) for h in doc_hashes], dtype=np.uint64)


def prev_node_ids(version_rank: int, keys: np.ndarray) -> np.ndarray:
    """Node ids of an earlier version's documents: negative, distinct per (version, key)."""
    with np.errstate(over="ignore"):
        mixed = splitmix64(keys ^ splitmix64(np.uint64(version_rank + 1)))
    return ((mixed & _MASK63) | np.uint64(1 << 63)).view(np.int64)


def current_node_ids(file_index: np.ndarray, record_index: np.ndarray) -> np.ndarray:
    return (np.asarray(file_index, np.int64) << 32) | np.asarray(record_index, np.int64)


def mark_duplicate_ids(part: pa.Table) -> pa.Table:
    """``schema:duplicate_id`` on every candidate whose id an earlier candidate has.

    As the local read keeps a set of the ids it has accepted: only records that passed
    the schema count, and the first of them (lowest node) keeps the id.
    """
    reason = part.column("reason").to_pylist()
    ids = part.column("id").to_pylist()
    node = part.column("node").to_numpy()
    seen: set[str] = set()
    changed = False
    for i in np.argsort(node, kind="stable").tolist():
        if reason[i] is not None:
            continue
        if ids[i] in seen:
            reason[i] = f"schema:duplicate_id:{ids[i][:80]}"
            changed = True
        else:
            seen.add(ids[i])
    if not changed:
        return part
    return part.set_column(part.schema.get_field_index("reason"), "reason", pa.array(reason))


def mark_exact(part: pa.Table) -> pa.Table:
    """``dedup:exact`` on every undecided document whose content key an earlier one has."""
    reason = part.column("reason").to_pylist()
    keys = part.column("key64").to_numpy()
    node = part.column("node").to_numpy()
    idx = np.flatnonzero(np.array([r is None for r in reason], dtype=bool))
    if len(idx) < 2:
        return part
    order = idx[np.lexsort((node[idx], keys[idx]))]
    same = order[1:][keys[order[1:]] == keys[order[:-1]]]
    for i in same:
        reason[i] = "dedup:exact"
    return part.set_column(part.schema.get_field_index("reason"), "reason", pa.array(reason))


def band_rows(nodes: pa.Table, partitions: int) -> pa.Table:
    """One row per (document, band): the band's key and the partition it hashes to."""
    n = nodes.num_rows
    if n == 0:
        return pa.table(
            {
                "part": pa.array([], pa.int64()),
                "band": pa.array([], pa.int64()),
                "bkey": pa.array([], pa.uint64()),
                "node": pa.array([], pa.int64()),
                "rank_hi": pa.array([], pa.int64()),
                "rank_lo": pa.array([], pa.uint64()),
            }
        )
    raw = b"".join(nodes.column("minhash").to_pylist())
    sigs = np.frombuffer(raw, dtype=np.uint32).reshape(n, NUM_PERM)
    keys = np.concatenate([band_keys(sigs, b, ROWS) for b in range(BANDS)])
    band = np.repeat(np.arange(BANDS, dtype=np.int64), n)
    with np.errstate(over="ignore"):
        salted = keys ^ splitmix64(band.astype(np.uint64) + np.uint64(1))
    return pa.table(
        {
            "part": partition_of(salted, partitions),
            "band": band,
            "bkey": keys,
            "node": np.tile(nodes.column("node").to_numpy(), BANDS),
            "rank_hi": np.tile(nodes.column("rank_hi").to_numpy(), BANDS),
            "rank_lo": np.tile(nodes.column("rank_lo").to_numpy(), BANDS),
        }
    )


def bucket_pairs(part: pa.Table) -> pa.Table:
    """(later, earlier) node pairs sharing a band bucket, deduplicated within the partition.

    Members of a bucket are taken in rank order and each is paired with up to
    ``MAX_RUN_PAIRS`` members just before it, exactly as the local path pairs them.
    """
    band = part.column("band").to_numpy()
    bkey = part.column("bkey").to_numpy()
    node = part.column("node").to_numpy()
    hi, lo = part.column("rank_hi").to_numpy(), part.column("rank_lo").to_numpy()
    order = np.lexsort((lo, hi, bkey, band))
    b, k = band[order], bkey[order]
    out = []
    for back in range(1, MAX_RUN_PAIRS + 1):
        pos = np.arange(back, len(order))
        pos = pos[(b[pos] == b[pos - back]) & (k[pos] == k[pos - back])]
        if not len(pos):
            break
        out.append(np.stack([node[order[pos]], node[order[pos - back]]], axis=1))
    pairs = np.unique(np.concatenate(out), axis=0) if out else np.empty((0, 2), np.int64)
    return pa.table({"later": pairs[:, 0], "earlier": pairs[:, 1]})


def verify_pairs(joined: pa.Table, min_jaccard: float) -> pa.Table:
    """The candidate pairs that are near copies: the edges of the duplicate graph.

    ``joined`` carries both ends' signatures and keys (``l_*`` and ``e_*`` columns). A
    pair whose later end is already published is no edge (published documents are
    kept), nor one of two copies of the same text (an earlier version's snapshot keeps
    it).
    """
    n = joined.num_rows
    if n == 0:
        return EDGE_SCHEMA.empty_table()
    later = joined.column("later").to_numpy()
    ls = np.frombuffer(b"".join(joined.column("l_sig").to_pylist()), np.uint32)
    es = np.frombuffer(b"".join(joined.column("e_sig").to_pylist()), np.uint32)
    same = (ls.reshape(n, NUM_PERM) == es.reshape(n, NUM_PERM)).sum(axis=1)
    keep = (
        (later >= 0)
        & (joined.column("l_key").to_numpy() != joined.column("e_key").to_numpy())
        & (same / NUM_PERM >= min_jaccard)
    )
    t = joined.filter(pa.array(keep))
    return pa.table(
        {
            "later": t.column("later"),
            "earlier": t.column("earlier"),
            "l_hi": t.column("l_hi"),
            "l_lo": t.column("l_lo"),
            "e_hi": t.column("e_hi"),
            "e_lo": t.column("e_lo"),
            "e_name": t.column("e_name"),
        },
        schema=EDGE_SCHEMA,
    )


def resolve_component(edges: pa.Table) -> pa.Table:
    """Greedy "keep the first of each cluster" over the edges of whole components.

    Edges in (later rank, earlier rank) order; a later document becomes a copy of the
    first earlier neighbour that is itself kept. Published documents are never copies.
    """
    if edges.num_rows == 0:
        return VERDICT_SCHEMA.empty_table()
    cols = [edges.column(c).to_numpy() for c in ("e_lo", "e_hi", "l_lo", "l_hi")]
    order = np.lexsort(cols)
    later = edges.column("later").to_numpy()[order]
    earlier = edges.column("earlier").to_numpy()[order]
    names = pc.take(edges.column("e_name"), pa.array(order)).to_pylist()
    copy_of: dict[int, str] = {}
    for lt, er, name in zip(later.tolist(), earlier.tolist(), names, strict=True):
        if lt in copy_of or er in copy_of:
            continue
        copy_of[lt] = name
    return pa.table(
        {"node": list(copy_of), "near_of": list(copy_of.values())}, schema=VERDICT_SCHEMA
    )
