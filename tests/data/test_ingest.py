"""Ingest: accounting, quarantine reasons, content-hashed versions, dedup, GX, atomicity."""

import json

import pyarrow.parquet as pq
import pytest
from corpus_factory import good_doc, write_jsonl, zh_doc

from lmops.config import DataConfig
from lmops.data.catalog import load_manifest
from lmops.data.ingest import ingest
from lmops.errors import DataStandardError, SourceError

CFG = DataConfig(quality_overrides={"zh": {"min_chars": 100}})


def quarantine(rep):
    return pq.read_table(sorted(rep.path.glob("quarantine-*.parquet"))).to_pylist()


def test_accounting_holds_and_every_rejection_has_a_reason(tmp_path):
    rows = [good_doc(i) for i in range(40)] + [zh_doc(i) for i in range(10)]
    rows += ['{"broken', {"id": "x", "text": 3}, {"id": "y"}, {"text": "  "}]
    rep = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], CFG, tmp_path / "ds")
    assert rep.balanced and rep.input == 54 and rep.accepted == 50
    q = quarantine(rep)
    assert len(q) == rep.quarantined == 4
    assert {r["rule"] for r in q} == {
        "parse:malformed_json",
        "schema:bad_type",
        "schema:missing",
        "quality:empty",
    }
    assert all(r["line"] >= 1 and r["source_file"].endswith("in.jsonl") for r in q)
    assert rep.langs == {"en": 40, "zh": 10}


def test_same_input_same_version_and_no_duplicate(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(30)])
    a = ingest([src], CFG, tmp_path / "ds")
    b = ingest([src], CFG, tmp_path / "ds")
    assert a.version_id == b.version_id and a.created and not b.created
    assert [p.name for p in (tmp_path / "ds").iterdir()] == [a.version_id]


def test_changed_input_gives_new_version(tmp_path):
    a = ingest(
        [write_jsonl(tmp_path / "a.jsonl", [good_doc(i) for i in range(30)])], CFG, tmp_path / "ds"
    )
    b = ingest(
        [write_jsonl(tmp_path / "b.jsonl", [good_doc(i) for i in range(31)])], CFG, tmp_path / "ds"
    )
    assert a.version_id != b.version_id


def test_manifest_records_counts_stages_standard_and_source_hashes(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(30)])
    m = load_manifest(ingest([src], CFG, tmp_path / "ds").path)
    assert m["standard_version"] == "1.1.0" and m["counts"]["accepted"] == 30
    assert m["standard"]["profile"] == "web" and len(m["standard"]["digest"]) == 16
    assert m["counts"]["stages"]["read"] == {"in": 30, "out": 30}
    assert len(m["sources"][0]["sha256"]) == 64 and len(m["content_digest"]) == 64


def test_exact_and_near_duplicates_are_quarantined(tmp_path):
    base = good_doc(1000)
    near = dict(base, id="near", text=base["text"].replace("The", "A", 1))
    rows = [good_doc(i) for i in range(30)] + [base, dict(base, id="copy"), near]
    rep = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], CFG, tmp_path / "ds")
    reasons = {r["record"] and json.loads(r["record"])["id"]: r["reason"] for r in quarantine(rep)}
    assert reasons["copy"] == "dedup:exact"
    assert reasons["near"].startswith("dedup:near:")


def test_near_dedup_against_earlier_versions(tmp_path):
    first = [good_doc(i) for i in range(30)]
    ingest([write_jsonl(tmp_path / "a.jsonl", first)], CFG, tmp_path / "ds")
    later = [good_doc(i) for i in range(100, 130)]
    later.append(dict(first[0], id="again", text=first[0]["text"] + " Once more."))
    rep = ingest([write_jsonl(tmp_path / "b.jsonl", later)], CFG, tmp_path / "ds")
    assert rep.reasons == {"dedup:near": 1}


def test_pii_is_redacted_and_counted(tmp_path):
    doc = good_doc(5)
    doc["text"] += " Write to zhang.wei@example.cn or call 13812345678 today."
    rep = ingest(
        [write_jsonl(tmp_path / "in.jsonl", [doc] + [good_doc(i) for i in range(30)])],
        CFG,
        tmp_path / "ds",
    )
    table = pq.read_table(sorted(rep.path.glob("part-*.parquet"))).to_pylist()
    text = next(r["text"] for r in table if r["id"] == "good-5")
    assert "<EMAIL>" in text and "<PHONE>" in text and "example.cn" not in text
    assert load_manifest(rep.path)["counts"]["pii_redactions"] == {"email": 1, "phone": 1}


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        ingest([str(tmp_path / "nope.jsonl")], CFG, tmp_path / "ds")


def test_failing_standard_publishes_nothing_and_keeps_evidence(tmp_path):
    rows = [{"id": f"x{i}", "text": "short"} for i in range(5)] + [good_doc(1)]
    with pytest.raises(DataStandardError, match="reject_rate"):
        ingest([write_jsonl(tmp_path / "in.jsonl", rows)], CFG, tmp_path / "ds")
    assert not list((tmp_path / "ds").glob("ds-*"))
    (rejected,) = (tmp_path / "ds").glob(".rejected-*")
    assert (rejected / "manifest.json").exists() and list(rejected.glob("quarantine-*"))


def test_language_mix_expectation(tmp_path):
    cfg = DataConfig(quality_overrides={"zh": {"min_chars": 100}}, lang_mix={"zh": (0.2, 0.8)})
    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(30)])
    with pytest.raises(DataStandardError, match="share_zh"):
        ingest([src], cfg, tmp_path / "ds")


def test_data_docs_and_plots_are_built(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(30)])
    rep = ingest([src], CFG, tmp_path / "ds")
    assert (rep.path / "data_docs" / "index.html").exists()
    for name in ("length_histogram", "language_mix", "reject_reasons"):
        assert (rep.path / f"plot_{name}.png").stat().st_size > 1000


def test_text_files_split_into_paragraphs(tmp_path):
    paras = [good_doc(i)["text"] for i in range(30)]
    (tmp_path / "a.txt").write_text("\n\n".join(paras) + "\n")
    rep = ingest([str(tmp_path / "a.txt")], CFG, tmp_path / "ds")
    assert rep.accepted == 30


def test_c4_lines_removed_from_accepted_documents_are_counted(tmp_path):
    from lmops.data.signals import ANNOTATED_SCHEMA

    if "c4_lines_removed" not in ANNOTATED_SCHEMA.names:
        pytest.skip("annotate does not report C4 line removals yet")
    docs = [good_doc(i) for i in range(30)]
    for d in docs[:3]:
        d["text"] += "\nClick here\nRead more"  # lines too short for C4: both go
    rep = ingest([write_jsonl(tmp_path / "in.jsonl", docs)], CFG, tmp_path / "ds")
    assert load_manifest(rep.path)["counts"]["c4_lines_removed"] == 6


def test_a_large_input_validates_in_a_side_process_with_the_same_outcome(tmp_path, monkeypatch):
    from lmops import side_process
    from lmops.data import ingest as ingest_module

    rows = [good_doc(i) for i in range(30)] + [zh_doc(i) for i in range(5)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    here = ingest([src], CFG, tmp_path / "here")
    started = []
    monkeypatch.setattr(ingest_module, "SIDE_PROCESS_BYTES", 0)  # every input is "large"
    real_start = side_process.start
    monkeypatch.setattr(side_process, "start", lambda m: started.append(m) or real_start(m))
    side = ingest([src], CFG, tmp_path / "side")
    assert started == [side_process.INGEST_MODULES]
    assert not side_process.started()  # stopped with the ingest that started it
    assert side.version_id == here.version_id
    keys = ("validation", "counts")
    assert {k: load_manifest(side.path)[k] for k in keys} == {
        k: load_manifest(here.path)[k] for k in keys
    }
    assert (side.path / "data_docs" / "index.html").exists()
    assert (side.path / "plot_language_mix.png").stat().st_size > 1000


def test_a_failed_ingest_stops_the_side_process_it_started(tmp_path, monkeypatch):
    from lmops import side_process
    from lmops.data import ingest as ingest_module

    def broken_read(*args, **kwargs):
        raise OSError("disk gone")

    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(5)])
    monkeypatch.setattr(ingest_module, "SIDE_PROCESS_BYTES", 0)
    monkeypatch.setattr(ingest_module, "stage_read", broken_read)
    with pytest.raises(OSError, match="disk gone"):
        ingest([src], CFG, tmp_path / "ds")
    assert not side_process.started()
