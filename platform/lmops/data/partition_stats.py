"""Per-partition statistics of accepted documents, and the GX expectations that check them.

On a cluster, the per-document metrics never reach one process. Workers summarise each
partition (hash-partitioned by ``doc_hash``) per language: row count, nulls, minimum and
maximum of every metric, and repeated ``doc_hash`` values. The suite's per-document
expectations are rewritten into expectations on that table, which say the same thing:

* ``expect_column_values_to_not_be_null(c)``  -> ``c_nulls`` is 0 in every row;
* ``expect_column_values_to_be_unique(c)``    -> ``c_duplicates`` is 0 (exact only because
  rows are partitioned by ``c``: only ``doc_hash`` is);
* ``expect_column_values_to_be_between(c, lo, hi)`` -> ``c_min >= lo`` and ``c_max <= hi``;
* ``expect_column_values_to_be_in_set(c, S)`` -> the value column itself (``lang``: one
  row per partition and language).

Any other per-document expectation has no statistic here and is a configuration error.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lmops.errors import ConfigError

PARTITIONED_BY = "doc_hash"
GROUP_COLUMN = "lang"


def stats_partition(batch: pa.Table, partitions: int) -> pa.Table:
    from lmops.data.cluster_dedup import key64, partition_of

    keys = key64([h or "0" * 16 for h in batch.column(PARTITIONED_BY).to_pylist()])
    return batch.append_column("part", pa.array(partition_of(keys, partitions)))


def partition_stats(part: pa.Table) -> pa.Table:
    """One row per language of the partition: counts, nulls, min and max of each metric."""
    out = []
    pid = int(part.column("part")[0].as_py()) if part.num_rows else -1
    table = part.drop_columns(["part"])
    langs = table.column(GROUP_COLUMN)
    for lang in pc.unique(langs).to_pylist():
        mask = pc.is_null(langs) if lang is None else pc.equal(langs, lang)
        t = table.filter(mask)
        row = {"partition": pid, GROUP_COLUMN: lang, "rows": t.num_rows}
        for name in t.column_names:
            col = t.column(name)
            row[f"{name}_nulls"] = col.null_count
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                mm = pc.min_max(col)
                row[f"{name}_min"] = mm["min"].as_py()
                row[f"{name}_max"] = mm["max"].as_py()
        hashes = t.column(PARTITIONED_BY).drop_null()
        row[f"{PARTITIONED_BY}_duplicates"] = len(hashes) - len(pc.unique(hashes))
        out.append(row)
    return pa.Table.from_pylist(out)


def partition_expectations(doc_expectations: list[dict]) -> list[dict]:
    """The per-document expectations rewritten onto the per-partition statistics."""
    out = []
    for e in doc_expectations:
        kind, kw = e["type"], dict(e["kwargs"])
        col = kw.pop("column")
        if kind == "expect_column_values_to_not_be_null":
            out.append(_between(f"{col}_nulls", 0, 0))
        elif kind == "expect_column_values_to_be_unique" and col == PARTITIONED_BY:
            out.append(_between(f"{col}_duplicates", 0, 0))
        elif kind == "expect_column_values_to_be_in_set" and col == GROUP_COLUMN:
            out.append(e)
        elif kind == "expect_column_values_to_be_between":
            lo, hi = kw.get("min_value"), kw.get("max_value")
            if lo is not None:
                out.append(_between(f"{col}_min", lo, None, strict_min=kw.get("strict_min")))
            if hi is not None:
                out.append(_between(f"{col}_max", None, hi, strict_max=kw.get("strict_max")))
        else:
            raise ConfigError(
                f"expectation {kind}({col}) has no per-partition statistic; on a Ray "
                "cluster the suite may use not_null, unique(doc_hash), between and "
                "in_set(lang) on documents"
            )
    return out


def _between(column: str, lo, hi, **strict) -> dict:
    kwargs = {"column": column, "min_value": lo, "max_value": hi}
    kwargs |= {k: v for k, v in strict.items() if v}
    return {"type": "expect_column_values_to_be_between", "kwargs": kwargs}
