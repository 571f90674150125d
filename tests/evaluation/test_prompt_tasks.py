"""Prompt tasks: templates in MLflow's prompt registry, ROUGE on the dev set, the alias."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import PromptVersion
from mlflow.tracking._tracking_service import utils as tracking_utils
from rouge_score import rouge_scorer

from lmops.config import EvalConfig, PromptTaskConfig
from lmops.errors import LmopsError
from lmops.evaluation import prompts
from lmops.evaluation.prompt_tasks import (
    CjkTokenizer,
    PromptTaskScorer,
    _fit,
    load_dev_set,
    pick_examples,
    summary_of,
)
from lmops.evaluation.scorer import EvalData, scorer_class

EVAL = EvalData("test", ())
SUMMARIZE = prompts.CANDIDATES["summarize"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A fresh SQLite tracking store for this module; the previous URI comes back after."""
    old_uri, old_env = tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory.mktemp('prompts') / 'mlflow.db'}")
    yield MlflowClient()
    mlflow.set_tracking_uri(old_uri)
    if old_env is not None:
        os.environ["MLFLOW_TRACKING_URI"] = old_env


def test_cjk_tokenizer_makes_chinese_rouge_count():
    ours = rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=CjkTokenizer())
    default = rouge_scorer.RougeScorer(["rougeL"])
    same = "地铁五号线下月开通。"
    assert default.score(same, same)["rougeL"].fmeasure == 0.0  # why we pass our own
    assert ours.score(same, same)["rougeL"].fmeasure == pytest.approx(1.0)
    assert ours.score(same, "今天天气很好")["rouge1"].fmeasure == 0.0
    assert CjkTokenizer().tokenize("GPU显存 ＯＫ, 12 GB!") == ["gpu", "显", "存", "ok", "12", "gb"]


def test_summary_is_the_first_line():
    assert summary_of("  The cat sat.\nThen more.") == "The cat sat."
    assert summary_of("\n\n 猫坐着。\n\n其他") == "猫坐着。"
    assert summary_of("") == ""


def test_select_best_takes_the_max_and_breaks_ties_to_the_older_version():
    assert prompts.select_best({1: 0.2, 2: 0.5, 3: 0.5, 4: 0.1}) == 2
    assert prompts.select_best({4: 0.3, 2: 0.1}) == 4
    assert prompts.select_best({3: 0.0, 1: 0.0}) == 1
    with pytest.raises(LmopsError, match="no candidate"):
        prompts.select_best({})


def test_dev_set_is_bilingual_and_complete():
    rows = load_dev_set("summarize")
    assert {lang: sum(r["lang"] == lang for r in rows) for lang in ("en", "zh")} == {
        "en": 16,
        "zh": 16,
    }
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["text"].strip() and r["summary"].strip() for r in rows)
    picked = pick_examples(rows, 3)
    assert [r["lang"] for r in picked] == ["en"] * 3 + ["zh"] * 3


def test_candidates_are_registered_once(registry):
    name = "test-idempotent"
    first = prompts.register_candidates(name)
    # A version added by hand is kept but is not a candidate.
    mlflow.genai.register_prompt(name=name, template="Summarise: {{text}}")
    again = prompts.register_candidates(name)
    assert [int(v.version) for v in again] == [int(v.version) for v in first] == [1, 2, 3, 4]
    stored = registry.search_prompt_versions(name)
    assert len(stored) == len(SUMMARIZE) + 1
    for v, cand in zip(again, SUMMARIZE, strict=True):
        loaded = prompts.load_version(name, v.version)
        assert loaded.template == cand.text
        assert loaded.tags[prompts.HASH_TAG] == prompts.template_hash(cand.text)


def test_prompts_fit_the_model_context(tiny_lm):
    _, tok = tiny_lm
    long_text = load_dev_set("summarize")[16]["text"] * 3
    for cand in SUMMARIZE:
        template = PromptVersion("t", 1, cand.text)
        prompt = _fit(tok, template, long_text, 32)
        assert len(tok(prompt, add_special_tokens=False)["input_ids"]) <= 32
        assert prompt.endswith(cand.text.split("{{text}}")[1])  # the cue stays at the end


def test_scorer_moves_the_alias_to_the_best_template(registry, tiny_lm, monkeypatch):
    model, tok = tiny_lm
    name = "test-select"
    versions = [int(v.version) for v in prompts.register_candidates(name)]
    mlflow.genai.set_prompt_alias(name=name, alias="best", version=max(versions))
    monkeypatch.setattr(model.config, "name_or_path", "models:/tiny/7")

    cfg = PromptTaskConfig(prompt_name=name, max_examples=2, max_new_tokens=16, select=False)
    kept = PromptTaskScorer(cfg, batch_size=16).score(model, tok, EVAL)
    assert int(prompts.load_alias(name, "best").version) == max(versions)  # select=False
    assert not any(r["alias"] for r in kept.tables["eval_prompt_selection"])

    result = PromptTaskScorer(cfg.model_copy(update={"select": True})).score(model, tok, EVAL)
    rows = result.tables["eval_prompt_tasks"]
    selection = result.tables["eval_prompt_selection"]
    assert len(rows) == len(versions) * 4  # 2 examples x 2 languages per template
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CjkTokenizer())
    for r in rows:
        assert r["summary"] == summary_of(r["completion"]) and "\n" not in r["summary"]
        again = rouge.score(r["reference"], r["summary"])
        assert [r[k] for k in ("rouge1", "rouge2", "rougeL")] == [
            pytest.approx(again[k].fmeasure) for k in ("rouge1", "rouge2", "rougeL")
        ]
    for sel in selection:
        mine = [r["rougeL"] for r in rows if r["version"] == sel["version"]]
        assert sel["rougeL"] == pytest.approx(np.mean(mine))
        assert result.metrics[f"eval/rougeL_{sel['version']}"] == pytest.approx(sel["rougeL"])
    top = max(s["rougeL"] for s in selection)
    expected = min(s["version"] for s in selection if s["rougeL"] == top)
    assert int(prompts.load_alias(name, "best").version) == expected
    assert result.metrics["eval/prompt_best_version"] == expected
    assert result.metrics["eval/rougeL"] == pytest.approx(top)
    assert [s["version"] for s in selection if s["selected"]] == [expected]
    assert [s["version"] for s in selection if s["alias"] == "best"] == [expected]
    tags = registry.get_prompt_version(name, expected).tags  # uncached, unlike load_prompt
    assert tags[prompts.MODEL_TAG] == "models:/tiny/7"


def test_scorer_is_registered_and_builds_from_the_eval_config():
    cls = scorer_class("prompt_tasks")
    assert cls is PromptTaskScorer
    scorer = cls.from_config(EvalConfig())
    assert scorer.cfg == EvalConfig().prompt_tasks
    assert scorer.check("mlm", EVAL) is not None
