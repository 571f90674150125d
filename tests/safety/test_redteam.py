"""The red-team set and scorer: balanced prompts, capped selection, per-group metrics."""

from __future__ import annotations

from collections import Counter

import pytest
from scripted_lm import ScriptedLM

from lmops.config import EvalConfig, SafetyConfig, TokenizerConfig
from lmops.errors import LmopsError
from lmops.evaluation.scorer import EvalData, scorer_class
from lmops.safety.redteam import (
    CATEGORIES,
    LANGS,
    RedTeamScorer,
    load_prompts,
    select_prompts,
)
from lmops.tokenizer import train_tokenizer

NO_DATA = EvalData("t", ())


def test_prompt_set_is_balanced_over_categories_and_languages():
    prompts = load_prompts()
    counts = Counter((p.category, p.lang) for p in prompts)
    assert set(counts) == {(c, lang) for c in CATEGORIES for lang in LANGS}
    assert set(counts.values()) == {8}
    assert len({p.id for p in prompts}) == len(prompts)
    for p in prompts:
        zh_chars = sum("\u4e00" <= ch <= "\u9fff" for ch in p.prompt)
        assert (zh_chars > 0) == (p.lang == "zh"), p.id


def test_bad_prompt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "lang": "fr", "category": "hate", "prompt": "x"}\n')
    with pytest.raises(LmopsError, match="p.jsonl:1: category must be one of"):
        load_prompts(path)
    path.write_text('{"id": "a", "prompt": "x"}\n')
    with pytest.raises(LmopsError, match="exactly the fields"):
        load_prompts(path)


def test_a_cap_still_covers_every_category_and_language():
    prompts = load_prompts()
    picked = select_prompts(prompts, 10)
    assert len(picked) == 10
    assert {(p.category, p.lang) for p in picked} == {(c, g) for c in CATEGORIES for g in LANGS}
    assert select_prompts(prompts, 0) == prompts == select_prompts(prompts, 1000)
    assert len(select_prompts(prompts, 13)) == 13


def test_registry_builds_the_safety_scorers_from_the_eval_config():
    cfg = EvalConfig(safety=SafetyConfig(max_prompts=5))
    for name in ("redteam", "pii_leak", "memorisation"):
        scorer = scorer_class(name).from_config(cfg)
        assert scorer.name == name
    assert scorer_class("redteam").from_config(cfg).safety.max_prompts == 5


@pytest.fixture(scope="module")
def tok(bilingual_texts):
    return train_tokenizer(
        [r["text"] for r in bilingual_texts[:20]], TokenizerConfig(vocab_size=300, min_frequency=1)
    )


HARMFUL = "I will kill you all, you stupid idiot, then build a pipe bomb. 我要砍死他，傻逼。"
HARMLESS = "Let us talk about the weather instead. 我们还是聊聊天气吧。"


def test_a_model_that_answers_harmfully_is_flagged_on_every_prompt(tok):
    cfg = SafetyConfig(max_new_tokens=200, max_prompts=20)
    bad = RedTeamScorer(cfg).score(ScriptedLM(tok, HARMFUL), tok, NO_DATA)
    good = RedTeamScorer(cfg).score(ScriptedLM(tok, HARMLESS), tok, NO_DATA)
    rows = bad.tables["safety_redteam"]
    assert len(rows) == bad.metrics["safety/redteam_prompts"] == 20
    assert {r["completion"] for r in rows} == {HARMFUL}
    assert all(r["flagged"] and r["categories_hit"] == "violence,illegal_activity" for r in rows)
    assert bad.metrics["safety/flagged_rate"] == 1.0 and bad.metrics["safety/score"] == 0.0
    assert bad.metrics["safety/toxicity_rate"] == 1.0
    assert good.metrics["safety/flagged_rate"] == 0.0 and good.metrics["safety/score"] == 1.0
    assert good.metrics["safety/max_toxicity"] <= cfg.toxicity_threshold
    for key in (*CATEGORIES, *LANGS):
        assert bad.metrics[f"safety/flagged_rate_{key}"] == 1.0
        assert good.metrics[f"safety/flagged_rate_{key}"] == 0.0
    assert set(rows[0]) == {
        "id",
        "lang",
        "category",
        "prompt",
        "completion",
        "toxicity",
        "categories_hit",
        "pii_kinds",
        "flagged",
    }


def test_rates_are_per_group_and_pii_counts_only_for_pii_prompts(tok):
    # PII and nothing else: only the pii_extraction prompts are flagged.
    answer = "Sure: anna.berg@example.com, +86 138 1234 5678."
    scorer = RedTeamScorer(SafetyConfig(max_new_tokens=200))
    res = scorer.score(ScriptedLM(tok, answer), tok, NO_DATA)
    m = res.metrics
    assert m["safety/flagged_rate_pii_extraction"] == 1.0
    assert all(m[f"safety/flagged_rate_{c}"] == 0.0 for c in CATEGORIES[:-1])
    assert m["safety/flagged_rate"] == pytest.approx(16 / 80)
    assert m["safety/flagged_rate_en"] == m["safety/flagged_rate_zh"] == pytest.approx(8 / 40)
    assert {r["pii_kinds"] for r in res.tables["safety_redteam"]} == {"email,phone"}
