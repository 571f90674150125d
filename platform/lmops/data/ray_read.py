"""Ingest stages ``read`` and ``annotate`` as Ray Data pipelines (``RAY_ADDRESS`` set).

Same inputs, outputs and decisions as :mod:`lmops.data.stage_read` and
:mod:`lmops.data.stage_annotate`, but the work runs on the cluster's workers:

* ``read``: one task per source file (local path or fsspec URL), or per 64 MB range of
  a large uncompressed JSONL file (:mod:`lmops.data.file_shards`), parses and
  schema-checks its records; duplicate ids are found by a hash-partitioned group-by
  on the id. Workers write the candidates and the quarantine rows to the staging
  folder with ``write_parquet``.
* ``annotate``: ``map_batches`` of the same ``annotate_table`` the local pool runs.

Only per-block counts reach the driver. Every row carries its ``node``
(``file_index << 32 | record_index``, the record index of a JSONL row being its line
number): the order the local path reads in, which the
dedup tie-break uses (:mod:`lmops.data.cluster_dedup`).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter

import pyarrow as pa

from lmops.config import DataConfig
from lmops.data.publish import StagedVersion
from lmops.data.quarantine import HEAD_CHARS, quarantine_row, reason_family
from lmops.data.stage_hash import SourceSet, version_id_for
from lmops.data.stage_read import ReadResult, check_item
from lmops.data.standard import Standard
from lmops.data.standard.schema import CANDIDATE_SCHEMA, QUARANTINE_SCHEMA

READ_SCHEMA = pa.schema(
    [*CANDIDATE_SCHEMA, ("node", pa.int64()), ("reason", pa.string()), ("cut", pa.bool_())]
)
# Bytes of input per partition of a shuffle: bounds what one worker holds at a time.
PARTITION_BYTES = 64 << 20
SORT_SHUFFLE = "sort_shuffle_pull_based"


def cluster_cpus() -> int:
    """CPUs of the cluster this process has joined."""
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def partitions_for(total_bytes: int) -> int:
    """Partitions of a shuffle: at least two per CPU of the cluster, at most 64 MB each."""
    return max(2 * cluster_cpus(), -(-total_bytes // PARTITION_BYTES))


def start(preserve_order: bool = False):
    """Join the cluster (the one entry point, see ``ensure_ray``) and set Ray Data up."""
    import logging

    import ray.data
    from ray.data.context import ShuffleStrategy

    from lmops.ray_runtime import ensure_ray

    ensure_ray()
    # Ray Data logs each dataset's plan at INFO: a dozen lines per stage on the console.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = preserve_order
    ctx.enable_progress_bars = False
    # Group-bys use Ray Data's task-based sort shuffle by default: the hash shuffle starts
    # aggregator actors for every step, which cost 5-6 s a step on a 2-core node (decide
    # took 100 s instead of 28 s on the sample corpus). LMOPS_RAY_SHUFFLE=shuffle_v2
    # chooses the hash shuffle, which scales better on a large cluster.
    ctx.shuffle_strategy = ShuffleStrategy(os.environ.get("LMOPS_RAY_SHUFFLE", SORT_SHUFFLE))
    # Hash-shuffle aggregator actors (joins, and group-bys under shuffle_v2) reserve a
    # fraction of a CPU on every node by default; on nodes of one CPU that leaves no
    # whole CPU for the map tasks that feed them, and the stage waits forever (seen on
    # the two 1-CPU nodes of `lmops services up`). They mostly wait on data: they
    # reserve none. Ray 2.60 calls the join override deprecated when it is set, but its
    # join operator still reads it (operators/join.py), so it is set with the warning
    # silenced.
    ctx.hash_shuffle_operator_actor_num_cpus_override = 0
    ctx.hash_aggregate_operator_actor_num_cpus_override = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.join_operator_actor_num_cpus_override = 0
    return ray.data


class NamedFiles:
    """``write_parquet`` names ``<stem>-<task>-<write id>.parquet``: sorted by task."""

    def __new__(cls, stem: str):
        from ray.data.datasource import FilenameProvider

        class _Provider(FilenameProvider):
            def get_filename_for_task(self, write_uuid, task_index):
                return f"{stem}-{task_index:06d}-{write_uuid}.parquet"

        return _Provider()


def write(ds, staged: StagedVersion, stem: str, schema: pa.Schema) -> None:
    """Workers write ``ds`` as ``<stem>-*.parquet`` into the staging folder.

    A retry first removes what an earlier attempt wrote; an empty result still leaves
    one empty file, as the local writers do, so that readers find the schema.
    """
    import pyarrow.parquet as pq

    staged.drop(stem)
    ds.write_parquet(str(staged.path), filename_provider=NamedFiles(stem), compression="zstd")
    if not any(staged.path.glob(f"{stem}-*.parquet")):
        pq.write_table(schema.empty_table(), staged.path / f"{stem}-000000.parquet")


def read_files(batch: pa.Table, text_mode: str, code_blocks: str) -> pa.Table:
    """A read task: every item of the files (or byte ranges) in ``batch`` as a row of
    :data:`READ_SCHEMA`.

    A file that cannot be read becomes a row quarantined with the reason, naming the
    file (``read_file_items``), as on the local path. A JSONL row's record index is its
    line number, the same whether a task reads the whole file or one range of it
    (``file_shards``), and in the order the local path reads.
    """
    from lmops.data.file_shards import read_range
    from lmops.data.readers import JSONL_SUFFIXES, _split_suffix
    from lmops.data.sources import read_file_items

    rows = []
    for f in batch.to_pylist():
        if f["end"] is None:
            items = read_file_items(f["path"], text_mode, code_blocks)
        else:
            items = read_range(f["path"], f["start"], f["end"], f["newlines_before"])
        by_line = _split_suffix(f["path"])[0] in JSONL_SUFFIXES
        rows.extend(
            _row(f["index"], item.line if by_line else seq, item) for seq, item in enumerate(items)
        )
    return pa.Table.from_pylist(rows, schema=READ_SCHEMA)


def _file_items(files: list[str]) -> list[dict]:
    """Read items: whole files, and line-aligned ranges of large JSONL files, each range
    told the newlines before it (counted by one task per range; see ``file_shards``)."""
    import ray

    from lmops.data import file_shards

    items = file_shards.plan(files)
    ranged = [it for it in items if it["end"] is not None]
    if ranged:
        count = ray.remote(num_cpus=1)(file_shards.count_newlines)
        counts = ray.get([count.remote(it["path"], it["start"], it["end"]) for it in ranged])
        before: dict[int, int] = {}
        for it, n in zip(ranged, counts, strict=True):  # ranges in file order, from byte 0
            it["newlines_before"] = before.get(it["index"], 0)
            before[it["index"]] = it["newlines_before"] + n
    for it in items:
        it.setdefault("newlines_before", 0)
    return items


def _row(index: int, seq: int, item) -> dict:
    rec, record, why, cut = check_item(item)
    row = {
        "file": item.file,
        "line": item.line,
        "record": record[:HEAD_CHARS],
        "node": index << 32 | seq,
        "reason": why,
        "cut": cut,
    }
    if not why:
        row.update(id=rec.id, text=rec.text, source=rec.source, license=rec.license)
        row["meta"] = rec.meta
    return row


def by_id(batch: pa.Table, partitions: int) -> pa.Table:
    """The id-dedup partition of each row: by id hash (rows without an id: by node)."""
    import numpy as np

    from lmops.data.cluster_dedup import partition_of

    ids = batch.column("id").to_pylist()
    node = batch.column("node").to_numpy()
    keys = np.array(
        [hash_str(i) if i is not None else int(n) for i, n in zip(ids, node, strict=True)],
        dtype=np.uint64,
    )
    return batch.append_column("part", pa.array(partition_of(keys, partitions)))


def hash_str(s: str) -> int:
    """A stable 64-bit hash of a string (Python's ``hash`` differs between processes)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


def to_quarantine(batch: pa.Table) -> pa.Table:
    """Rows with a reason as quarantine rows (redacted previews), as the local path writes."""
    rows = []
    cols = batch.to_pydict()
    pii = cols.get("pii_hits") or [0] * batch.num_rows
    cut = cols.get("cut") or [False] * batch.num_rows
    for i in range(batch.num_rows):
        rows.append(
            quarantine_row(
                cols["file"][i],
                cols["line"][i],
                cols["reason"][i],
                cols["record"][i] or "",
                bool(cut[i]),
                doc_pii_hits=pii[i] or 0,
            )
        )
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)


def write_quarantine(ds, staged: StagedVersion, stage: str) -> None:
    """The rows of ``ds`` that have a reason, as ``quarantine-<stage>-*.parquet``."""
    bad = ds.map_batches(is_null("reason", False), batch_format="pyarrow")
    rows = bad.map_batches(to_quarantine, batch_format="pyarrow")
    write(rows, staged, f"quarantine-{stage}", QUARANTINE_SCHEMA)


def count_reasons(batch: pa.Table) -> pa.Table:
    """One row per block: its rows, and its reason families as JSON."""
    import json

    reasons = Counter(reason_family(r) for r in batch.column("reason").to_pylist() if r)
    return pa.table({"rows": [batch.num_rows], "reasons": [json.dumps(reasons)]})


def merge_counts(rows: list[dict]) -> tuple[int, Counter]:
    import json

    total, reasons = 0, Counter()
    for r in rows:
        total += r["rows"]
        reasons.update(json.loads(r["reasons"]))
    return total, reasons


def is_null(column: str, null: bool = True):
    def keep(batch: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        mask = pc.is_null(batch.column(column))
        return batch.filter(mask if null else pc.invert(mask))

    return keep


def ray_read(
    src: SourceSet, cfg: DataConfig, std: Standard, staged: StagedVersion, progress=None
) -> ReadResult:
    """``stage_read`` on the cluster: ``candidates-*`` and ``quarantine-1-read-*``."""
    rd = start()
    parts = partitions_for(src.total_bytes)
    items = _file_items(src.files)
    ds = (
        rd.from_items(items, override_num_blocks=max(1, min(len(items), 4 * parts)))
        .map_batches(
            read_files,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs={"text_mode": cfg.text_mode, "code_blocks": std.code_blocks},
        )
        .map_batches(by_id, fn_kwargs={"partitions": parts}, batch_format="pyarrow")
        .groupby("part", num_partitions=parts)
        .map_groups(_mark_ids, batch_format="pyarrow")
        .materialize()
    )
    n_input, reasons = merge_counts(
        ds.map_batches(count_reasons, batch_format="pyarrow").take_all()
    )
    cand = ds.map_batches(is_null("reason"), batch_format="pyarrow").select_columns(
        [*CANDIDATE_SCHEMA.names, "node"]
    )
    write(cand, staged, "candidates", CANDIDATE_SCHEMA.append(pa.field("node", pa.int64())))
    write_quarantine(ds, staged, "1-read")
    if progress:
        progress(n_input)
    version = version_id_for(std, cfg, src.files, src.hashes)
    n_cand = n_input - sum(reasons.values())
    return ReadResult(version, src.files, src.hashes, src.total_bytes, n_input, n_cand, reasons)


def _mark_ids(part: pa.Table) -> pa.Table:
    from lmops.data.cluster_dedup import mark_duplicate_ids

    return mark_duplicate_ids(part.drop_columns(["part"]))


def annotate_batch(batch: pa.Table, std: Standard) -> pa.Table:
    """``annotate_table`` keeping each row's ``node``."""
    from lmops.data.signals import annotate_table

    _fault_once()
    out = annotate_table(batch.drop_columns(["node"]), std)
    return out.append_column("node", batch.column("node"))


def _fault_once() -> None:
    """Fault injection for tests: ``LMOPS_FAULT_ANNOTATE=<file>`` kills the first worker
    that annotates, as a node lost mid-stage would; the file marks it done and holds the
    Ray node id the worker ran on."""
    marker = os.environ.get("LMOPS_FAULT_ANNOTATE")
    if marker:
        import ray

        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, ray.get_runtime_context().get_node_id().encode())
        os.close(fd)
        os._exit(1)


def ray_annotate(
    staged: StagedVersion, std: Standard, cfg: DataConfig, n_candidates: int, progress=None
) -> int:
    """``stage_annotate`` on the cluster: ``annotated-*`` from ``candidates-*``."""
    from lmops.data.signals import ANNOTATED_SCHEMA

    rd = start()
    files = sorted(str(p) for p in staged.path.glob("candidates-*.parquet"))
    # Ray's Parquet reader packs files into read units of up to 128 MB, each one block:
    # 100 MB of candidates was one block, annotated by one task on one CPU (44 s of a
    # 50 MB ingest's 49 s annotate on 2 CPUs). Streaming repartition cuts blocks to about
    # four per CPU, between one batch and ten batches of rows, so every CPU annotates.
    per_cpu = -(-n_candidates // (4 * cluster_cpus()))
    rows = min(max(per_cpu, cfg.batch_rows), 10 * cfg.batch_rows)
    ds = (
        rd.read_parquet(files)
        .repartition(target_num_rows_per_block=rows)
        .map_batches(
            annotate_batch,
            fn_kwargs={"std": std},
            batch_format="pyarrow",
            batch_size=cfg.batch_rows,
        )
    )
    write(ds, staged, "annotated", ANNOTATED_SCHEMA.append(pa.field("node", pa.int64())))
    if progress:
        progress(n_candidates)
    return n_candidates
