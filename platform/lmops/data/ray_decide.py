"""Ingest stage ``decide`` as a Ray Data pipeline: exact and near dedup on the cluster.

The same decisions as :func:`lmops.data.stage_decide.stage_decide`, cut into shuffles
(the partition functions and the tie-break are in :mod:`lmops.data.cluster_dedup`):

1. exact dedup: group-by on the content key's partition;
2. near dedup: LSH band rows (earlier versions' signatures read as a dataset by the
   workers) grouped by band key into candidate pairs; both ends' signatures joined
   in to verify; connected components of the verified edges; "keep the first of each
   cluster" resolved per component; the verdicts joined back to the rows;
3. workers write the accepted rows (in input order), their metrics and signatures, and
   the quarantine rows to the staging folder; per-block sums and per-partition
   statistics (for Great Expectations) are all that reach the driver.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.quarantine import reason_family
from lmops.data.ray_read import is_null, partitions_for, start, write, write_quarantine
from lmops.data.stage_decide import PII_COLUMNS, DecideResult
from lmops.data.stage_read import ReadResult
from lmops.data.standard import Standard
from lmops.data.standard.schema import ACCEPTED_SCHEMA, METRICS_SCHEMA

# Verified near-duplicate edges up to which one worker resolves them all (about 100 bytes
# an edge: 200 MB); above it, connected components split the work across the cluster.
ONE_TASK_EDGES = 2_000_000
SIGNATURE_SCHEMA = pa.schema([("doc_hash", pa.string()), ("minhash", pa.binary())])


def with_key(batch: pa.Table, partitions: int) -> pa.Table:
    """Each row's content key and the partition it hashes to."""
    from lmops.data.cluster_dedup import key64, partition_of

    hashes = batch.column("doc_hash").to_pylist()
    keys = key64([h or "0" * 16 for h in hashes])
    batch = batch.append_column("key64", pa.array(keys, pa.uint64()))
    return batch.append_column("part", pa.array(partition_of(keys, partitions)))


def _exact(part: pa.Table) -> pa.Table:
    from lmops.data.cluster_dedup import mark_exact

    return mark_exact(part)


def to_nodes(batch: pa.Table) -> pa.Table:
    """Undecided rows of this input as dedup nodes (rank = file, record)."""
    from lmops.data.cluster_dedup import NODE_SCHEMA
    from lmops.data.near_dedup import NUM_PERM

    node = batch.column("node").to_numpy()
    empty = bytes(4 * NUM_PERM)  # a row without a signature counts as all zeros, as locally
    sigs = [s or empty for s in batch.column("minhash").to_pylist()]
    keys = batch.column("key64").to_numpy()
    return pa.table(
        {
            "node": node,
            "rank_hi": node >> 32,
            "rank_lo": (node & 0xFFFFFFFF).astype(np.uint64),
            "key64": keys,
            "name": [f"{int(k):016x}" for k in keys],
            "minhash": pa.array(sigs, pa.binary()),
        },
        schema=NODE_SCHEMA,
    )


def _side(nodes, prefix: str, keep_name: bool):
    cols = {"node": "later" if prefix == "l" else "earlier", "minhash": f"{prefix}_sig"}
    cols |= {"key64": f"{prefix}_key", "rank_hi": f"{prefix}_hi", "rank_lo": f"{prefix}_lo"}
    if keep_name:
        cols["name"] = f"{prefix}_name"
        return nodes.rename_columns(cols)
    return nodes.drop_columns(["name"]).rename_columns(cols)


def near_verdicts(rows, datasets_root, std: Standard, exclude: str, parts: int, rd):
    """(node, near_of) for every document that is a near copy of a kept one, or None."""
    from lmops.data import cluster_dedup as cd
    from lmops.data.connected_components import connected_components
    from lmops.data.signatures import load_signature_batch, signature_shards

    nodes = rows.map_batches(is_null("reason"), batch_format="pyarrow").map_batches(
        to_nodes, batch_format="pyarrow"
    )
    shards = signature_shards(datasets_root, exclude) if std.against_previous else []
    if shards:
        prev = rd.from_items(shards, override_num_blocks=len(shards)).map_batches(
            load_signature_batch, batch_size=1, batch_format="pyarrow"
        )
        nodes = nodes.union(prev)
    nodes = nodes.materialize()
    pairs = (
        nodes.map_batches(cd.band_rows, fn_kwargs={"partitions": parts}, batch_format="pyarrow")
        .groupby("part", num_partitions=parts)
        .map_groups(cd.bucket_pairs, batch_format="pyarrow")
    )
    joined = pairs.join(
        _side(nodes, "l", False), "inner", num_partitions=parts, on=("later",)
    ).join(_side(nodes, "e", True), "inner", num_partitions=parts, on=("earlier",))
    edges = joined.map_batches(
        cd.verify_pairs, fn_kwargs={"min_jaccard": std.min_jaccard}, batch_format="pyarrow"
    ).materialize()
    n_edges = edges.count()
    if n_edges == 0:
        return None
    if n_edges <= ONE_TASK_EDGES:
        # Every component in one worker task (the greedy over all edges at once is the
        # greedy per component): saves the rounds of shuffles components need.
        return (
            edges.repartition(1)
            .map_batches(_resolve, batch_size=None, batch_format="pyarrow")
            .materialize()
        )
    roots = connected_components(
        edges.select_columns(["later", "earlier"]).rename_columns({"later": "x", "earlier": "y"}),
        parts,
    ).rename_columns({"x": "later", "y": "root"})
    labelled = edges.join(roots, "left_outer", num_partitions=parts, on=("later",))
    return (
        labelled.map_batches(
            _component_part, fn_kwargs={"partitions": parts}, batch_format="pyarrow"
        )
        .groupby("part", num_partitions=parts)
        .map_groups(_resolve, batch_format="pyarrow")
        .materialize()
    )


def _component_part(batch: pa.Table, partitions: int) -> pa.Table:
    from lmops.data.cluster_dedup import partition_of

    root = pc.fill_null(batch.column("root"), batch.column("later")).to_numpy()
    return batch.append_column("part", pa.array(partition_of(root.view(np.uint64), partitions)))


def _resolve(part: pa.Table) -> pa.Table:
    from lmops.data.cluster_dedup import resolve_component

    return resolve_component(part)


def apply_verdicts(batch: pa.Table) -> pa.Table:
    """``dedup:near:<kept>`` on each undecided row the near step named a copy."""
    reason = batch.column("reason").to_pylist()
    near = batch.column("near_of").to_pylist()
    out = [r if r or n is None else f"dedup:near:{n}" for r, n in zip(reason, near, strict=True)]
    batch = batch.drop_columns(["near_of"])
    return batch.set_column(
        batch.schema.get_field_index("reason"), "reason", pa.array(out, pa.string())
    )


def summarize(batch: pa.Table) -> pa.Table:
    """One row per block: the sums ``DecideResult`` holds, as JSON."""
    from lmops.data.signatures import row_digest

    reasons, langs, pii = Counter(), Counter(), Counter()
    digest = acc = acc_bytes = c4 = exact = near = 0
    for row in batch.to_pylist():
        why = row["reason"]
        if why:
            reasons[reason_family(why)] += 1
            exact += why == "dedup:exact"
            near += why.startswith("dedup:near:")
            continue
        acc += 1
        acc_bytes += len(row["text"].encode("utf-8"))
        langs[row["lang"]] += 1
        digest += row_digest(row)
        c4 += row.get("c4_lines_removed") or 0
        for k in PII_COLUMNS:
            if row[k]:
                pii[k[4:]] += row[k]
    s = {"reasons": reasons, "langs": langs, "pii": pii, "digest": str(digest), "acc": acc}
    s |= {"bytes": acc_bytes, "c4": c4, "exact": exact, "near": near}
    return pa.table({"sums": [json.dumps(s)]})


def ray_decide(
    staged: StagedVersion, std: Standard, cfg: DataConfig, read: ReadResult, datasets_root
) -> DecideResult:
    """``stage_decide`` on the cluster; also writes ``partition_stats.parquet`` for GX."""
    from lmops.data.partition_stats import partition_stats, stats_partition
    from lmops.data.signatures import content_digest

    rd = start()
    parts = partitions_for(read.input_bytes)
    files = sorted(str(p) for p in staged.path.glob("annotated-*.parquet"))
    rows = rd.read_parquet(files).map_batches(
        with_key, fn_kwargs={"partitions": parts}, batch_format="pyarrow"
    )
    if std.exact_dedup:
        rows = rows.groupby("part", num_partitions=parts).map_groups(_exact, batch_format="pyarrow")
    rows = rows.drop_columns(["part"]).materialize()
    verdicts = (
        near_verdicts(rows, datasets_root, std, read.version_id, parts, rd)
        if std.near_dedup
        else None
    )
    if verdicts is not None:
        rows = (
            rows.join(verdicts, "left_outer", num_partitions=parts, on=("node",))
            .map_batches(apply_verdicts, batch_format="pyarrow")
            .materialize()
        )
    accepted = rows.map_batches(is_null("reason"), batch_format="pyarrow")
    rd.DataContext.get_current().execution_options.preserve_order = True
    write(
        accepted.sort("node").select_columns(ACCEPTED_SCHEMA.names), staged, "part", ACCEPTED_SCHEMA
    )
    rd.DataContext.get_current().execution_options.preserve_order = False
    write(accepted.select_columns(METRICS_SCHEMA.names), staged, "metrics", METRICS_SCHEMA)
    write(accepted.select_columns(SIGNATURE_SCHEMA.names), staged, "signatures", SIGNATURE_SCHEMA)
    write_quarantine(rows, staged, "3-decide")
    stats = (
        accepted.select_columns(METRICS_SCHEMA.names)
        .map_batches(stats_partition, fn_kwargs={"partitions": parts}, batch_format="pyarrow")
        .groupby("part", num_partitions=parts)
        .map_groups(partition_stats, batch_format="pyarrow")
    )
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(stats.take_all()), staged.path / "partition_stats.parquet")
    sums = [
        json.loads(r["sums"])
        for r in rows.map_batches(summarize, batch_format="pyarrow").take_all()
    ]
    reasons, langs, pii = Counter(), Counter(), Counter()
    for s in sums:
        reasons.update(s["reasons"])
        langs.update(s["langs"])
        pii.update(s["pii"])
    return DecideResult(
        read.version_id,
        content_digest(sum(int(s["digest"]) for s in sums)),
        sum(s["acc"] for s in sums),
        sum(s["exact"] for s in sums),
        sum(s["near"] for s in sums),
        reasons,
        langs,
        sum(s["bytes"] for s in sums),
        dict(pii),
        sum(s["c4"] for s in sums),
    )
