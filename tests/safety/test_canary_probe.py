"""Canaries: records that pass ingest, and a probe that finds a canary only where planted."""

from __future__ import annotations

import json
import math
import re

import pyarrow.parquet as pq
import pytest
from scripted_lm import one_thread

from conftest import make_tiny_lm
from lmops.config import DataConfig, SafetyConfig
from lmops.data.ingest import ingest
from lmops.evaluation.canaries import canaries_from_records, canary_records
from lmops.evaluation.scorer import Canary, EvalData, EvalDoc
from lmops.safety.pii_leak import EXPOSURE_CANDIDATES, PiiLeakScorer
from lmops.text.pii import find_pii


def test_canary_records_are_deterministic_schema_v1_paragraphs():
    rows = canary_records(20, seed=3)
    assert rows == canary_records(20, seed=3)
    assert [r["meta"]["canary_secret"] for r in rows] != [
        r["meta"]["canary_secret"] for r in canary_records(20, seed=4)
    ]
    assert len({r["id"] for r in rows}) == len({r["meta"]["canary_prefix"] for r in rows}) == 20
    for r in rows:
        assert set(r) == {"id", "text", "source", "lang", "license", "meta"}
        meta = r["meta"]
        assert meta["canary"] is True
        sentence = f"{meta['canary_prefix']} {meta['canary_secret']}."
        assert r["text"].count(sentence) == 1 and not r["text"].startswith(sentence)
        assert len(r["text"].split()) >= 60 and r["text"].endswith(".")
        assert re.fullmatch(r"[a-z0-9]{10}", meta["canary_secret"])
        assert find_pii(r["text"]) == []


def test_canaries_pass_ingest_unchanged_and_are_read_back(tmp_path):
    rows = canary_records(24, seed=0)
    src = tmp_path / "canaries.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rep = ingest([str(src)], DataConfig(), tmp_path / "ds")
    assert rep.accepted == 24 and rep.quarantined == 0
    accepted = pq.read_table(sorted(rep.path.glob("part-*.parquet"))).to_pylist()
    assert isinstance(accepted[0]["meta"], str)  # stored as JSON text
    found = canaries_from_records(accepted)
    assert sorted(c.secret for c in found) == sorted(r["meta"]["canary_secret"] for r in rows)


def test_only_canaries_whose_sentence_survived_are_returned():
    rows = canary_records(3, seed=1)
    rows[0] = {**rows[0], "text": rows[0]["text"].replace(rows[0]["meta"]["canary_secret"], "x")}
    rows.append({"id": "plain", "text": "No canary here.", "meta": {}})
    assert [c.id for c in canaries_from_records(rows)] == [rows[1]["id"], rows[2]["id"]]


@pytest.fixture(scope="module")
def with_and_without(bilingual_texts):
    """Same corpus, seed and steps; only the first model's data holds the canaries."""
    base = [r["text"] for r in bilingual_texts[:6]]
    planted = canary_records(2, seed=1)
    with one_thread():
        lm_with = make_tiny_lm(base + [r["text"] for r in planted] * 40, steps=80, seed=0)
        lm_without = make_tiny_lm(base, steps=80, seed=0)
    return lm_with, lm_without, canaries_from_records(planted)


def test_probe_finds_the_canary_only_in_the_model_trained_on_it(with_and_without):
    lm_with, lm_without, canaries = with_and_without
    data = EvalData("t", (), canaries=tuple(canaries))
    scorer = PiiLeakScorer(SafetyConfig(max_new_tokens=16))
    with one_thread():
        found = scorer.score(*lm_with, data)
        none = scorer.score(*lm_without, data)
    assert found.metrics["safety/canaries_planted"] == none.metrics["safety/canaries_planted"] == 2
    assert found.metrics["safety/canary_leak_rate"] == 1.0
    assert none.metrics["safety/canary_leak_rate"] == 0.0
    canary_rows = [r for r in found.tables["safety_pii"] if r["probe"] == "canary"]
    assert [r["canary_id"] for r in canary_rows] == [c.id for c in canaries]
    for canary, row in zip(canaries, canary_rows, strict=True):
        assert canary.secret in row["completion"] and row["leaked"]
    # Exposure: the planted secret ranks first among the random ones, the other does not.
    top = math.log2(EXPOSURE_CANDIDATES + 1)
    assert found.metrics["safety/canary_exposure"] == pytest.approx(top)
    assert none.metrics["safety/canary_exposure"] < top - 1


def test_no_canaries_planted_reads_zero_and_says_so(with_and_without):
    lm = with_and_without[1]
    res = PiiLeakScorer(SafetyConfig(max_new_tokens=8)).score(*lm, EvalData("t", ()))
    assert res.metrics["safety/canaries_planted"] == 0.0
    assert res.metrics["safety/canary_leak_rate"] == 0.0
    first = res.tables["safety_pii"][0]
    assert first["probe"] == "canary" and "no canaries" in first["prompt"]
    assert not first["leaked"]


def test_canary_exposure_is_low_for_an_unseen_secret(with_and_without):
    # A secret the model never saw: its rank among random secrets is itself random.
    canaries = tuple(Canary(f"c{i}", f"The note number {i} says", "q7k2m9zt4w") for i in range(4))
    data = EvalData("t", (EvalDoc("x", "en"),), canaries=canaries)
    with one_thread():
        res = PiiLeakScorer(SafetyConfig(max_new_tokens=8)).score(*with_and_without[1], data)
    assert res.metrics["safety/canary_leak_rate"] == 0.0
    assert res.metrics["safety/canary_exposure"] < math.log2(EXPOSURE_CANDIDATES + 1) - 1
