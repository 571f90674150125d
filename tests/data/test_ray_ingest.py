"""The whole ingest on Ray Data gives the local path's decisions, row for row.

Both paths ingest the sample corpus plus planted exact copies, near copies (a cluster of
three), a repeated id, and then a second input deduplicated against the first version.
The planted file is read in 4 kB ranges by as many tasks, its malformed lines
quarantined with the whole file's line numbers. The Ray run resolves near copies
through the distributed connected components (the one-task shortcut switched off), so
that the cluster algorithm itself is what agrees, and its first annotate worker is
killed mid-stage: Ray retries the task, with the same result.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.corpus.sample import write_sample_corpus
from lmops.data.ingest import ingest

CFG = DataConfig(quality_overrides={"en": {"min_words": 20}, "zh": {"min_chars": 100}})


def _inputs(tmp_path):
    base = [good_doc(i) for i in range(60)]
    planted = [
        dict(base[3], id="copy3"),
        dict(base[5], id="near5", text=base[5]["text"].replace("The", "A", 1)),
        dict(base[7], id="n7a", text=base[7]["text"] + " Yes."),
        dict(base[7], id="n7b", text=base[7]["text"] + " No."),
        dict(base[1], id=base[2]["id"]),  # a repeated id
    ]
    first = [str(p) for p in write_sample_corpus(tmp_path / "sample")]
    planted_file = write_jsonl(tmp_path / "planted.jsonl", base + planted)
    with open(planted_file, "a", encoding="utf-8") as f:  # bad lines, quarantined by number
        f.write("{not json\n[1, 2]\n\n" + json.dumps(good_doc(90)) + "\n")
    first.append(planted_file)
    later = [good_doc(i) for i in range(200, 230)]
    later.append(dict(base[0], id="again", text=base[0]["text"] + " Once more."))
    return first, [write_jsonl(tmp_path / "later.jsonl", later)]


def _outcome(rep) -> dict:
    m = json.loads((rep.path / "manifest.json").read_text())
    ids = [i for s in m["shards"] for i in pq.read_table(rep.path / s).column("id").to_pylist()]
    quarantine = sorted(
        (r["source_file"], r["line"], r["reason"])
        for f in m["quarantine_files"]
        for r in pq.read_table(rep.path / f).to_pylist()
    )
    return {
        "id": rep.version_id,
        "digest": m["content_digest"],
        "accepted": ids,
        "quarantine": quarantine,
    }


def test_ray_path_makes_the_local_decisions(tmp_path, local_ray):
    from lmops.data import file_shards, ray_decide

    first, later = _inputs(tmp_path)
    local = [_outcome(ingest(src, CFG, tmp_path / "local")) for src in (first, later)]
    local_ray.setenv("RAY_ADDRESS", "local")
    local_ray.setattr(ray_decide, "ONE_TASK_EDGES", 0)
    # planted.jsonl is read as 4 kB ranges by as many tasks (file_shards).
    local_ray.setattr(file_shards, "SHARD_BYTES", 4096)
    # The first worker that annotates dies mid-stage: Ray retries its task.
    local_ray.setenv("LMOPS_FAULT_ANNOTATE", str(tmp_path / "killed"))
    a = _outcome(ingest(first, CFG, tmp_path / "ray"))
    assert (tmp_path / "killed").exists()
    assert not list((tmp_path / "ray").glob(".staging-*"))  # nothing partial left
    local_ray.undo()
    local_ray.setenv("RAY_ADDRESS", "local")
    b = _outcome(ingest(later, CFG, tmp_path / "ray"))
    reasons = {q[2] for q in a["quarantine"]}
    assert "dedup:exact" in reasons and "schema:duplicate_id:good-2" in reasons
    assert any(r.startswith("parse:malformed_json") for r in reasons)
    assert any(r.startswith("parse:not_an_object") for r in reasons)
    assert sum(r.startswith("dedup:near:") for r in reasons) >= 2
    assert any(q[2].startswith("dedup:near:") for q in b["quarantine"])  # against version 1
    assert a == local[0]
    assert b == local[1]


def test_connected_components_agree_with_union_find(local_ray):
    import ray.data

    from lmops.data.connected_components import connected_components
    from lmops.data.ray_read import start

    rng = np.random.default_rng(7)
    nodes = np.unique(rng.integers(-(2**62), 2**62, 400))
    edges = {(int(a), int(b)) for a, b in rng.choice(nodes, (300, 2)) if a != b}
    edges |= {(int(nodes[i + 1]), int(nodes[i])) for i in range(100, 160)}  # a long chain
    parent = {int(n): int(n) for n in nodes}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    start()
    rows = [{"x": max(a, b), "y": min(a, b)} for a, b in edges]
    roots = connected_components(ray.data.from_items(rows), partitions=3).take_all()
    got = {r["x"]: r["y"] for r in roots}
    touched = {n for e in edges for n in e}
    expected = {n: find(n) for n in touched if find(n) != n}
    assert got == expected


def test_partition_statistics_fail_the_suite_as_documents_would(tmp_path):
    """A toxic document in one partition fails GX in per-partition form too."""
    import pandas as pd

    from lmops.data.partition_stats import partition_expectations
    from lmops.data.standard import load_standard
    from lmops.data.validate import validate_dataset
    from lmops.errors import ConfigError

    std = load_standard(CFG)
    row = {"partition": 0, "lang": "en", "rows": 10, "id_nulls": 0, "doc_hash_duplicates": 0}
    row |= {"n_chars_min": 300, "dup_line_ratio_min": 0.0, "dup_line_ratio_max": 0.1}
    row |= {"lang_score_min": 0.9, "toxicity_max": 0.01, "pii_hits_max": 0}
    bad = dict(row, partition=1, toxicity_max=0.99)
    stats = {"input": 20, "accepted": 20, "quarantined": 0, "reject_rate": 0.0}
    stats |= {"duplicate_rate": 0.0, "accounting_gap": 0, "share_en": 1.0}
    good = validate_dataset(pd.DataFrame([row]), dict(stats), std, per_partition=True)
    assert good.success, good.failures
    out = validate_dataset(pd.DataFrame([row, bad]), dict(stats), std, per_partition=True)
    assert not out.success
    assert len(out.failures) == 1 and "(toxicity_max)" in out.failures[0]
    with pytest.raises(ConfigError, match="no per-partition statistic"):
        partition_expectations(
            [{"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "id"}}]
        )


def test_an_unreadable_file_is_a_quarantine_row_naming_it(tmp_path):
    bad = tmp_path / "in" / "broken.jsonl.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    write_jsonl(tmp_path / "in" / "good.jsonl", [good_doc(i) for i in range(30)])
    rep = ingest([str(tmp_path / "in")], CFG, tmp_path / "ds")
    assert rep.reasons["parse:unreadable"] == 1
    rows = pq.read_table(rep.path / "quarantine-1-read-00000.parquet").to_pylist()
    assert rows[0]["source_file"] == str(bad) and "Error" in rows[0]["record"]


@pytest.mark.timeout(90)
def test_joins_and_hash_shuffles_run_on_a_node_of_one_cpu(local_ray):
    """Aggregator actors reserve no CPU, else a 1-CPU node has none left to feed them.

    The services cluster's nodes have one CPU each; with Ray Data's default reservation
    the ingest's joins waited forever there (pytest-timeout fails this test instead).
    """
    import ray
    import ray.data

    from lmops.data.ray_read import start

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    local_ray.setenv("LMOPS_RAY_SHUFFLE", "hash_shuffle")
    start()
    left = ray.data.range(2000, override_num_blocks=4).map(lambda r: {"k": r["id"], "a": 1})
    right = ray.data.range(2000, override_num_blocks=4).map(lambda r: {"k": r["id"], "b": 2})
    joined = left.join(right, join_type="inner", num_partitions=2, on=("k",))
    assert joined.count() == 2000
    counts = left.groupby("a", num_partitions=2).count().take_all()
    assert counts == [{"a": 1, "count()": 2000}]
