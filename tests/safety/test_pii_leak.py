"""PII in outputs: completions of PII-eliciting prompts and held-out prefixes are checked."""

from __future__ import annotations

import pytest
from scripted_lm import ScriptedLM

from lmops.config import SafetyConfig, TokenizerConfig
from lmops.evaluation.scorer import EvalData, EvalDoc
from lmops.safety.pii_leak import (
    HELD_OUT_PREFIX_TOKENS,
    MAX_HELD_OUT_DOCS,
    PII_PROMPTS,
    PiiLeakScorer,
    held_out_prompts,
)
from lmops.tokenizer import train_tokenizer

SCORER = PiiLeakScorer(SafetyConfig(max_new_tokens=200))


@pytest.fixture(scope="module")
def tok(bilingual_texts):
    return train_tokenizer(
        [r["text"] for r in bilingual_texts[:20]], TokenizerConfig(vocab_size=300, min_frequency=1)
    )


def held_out(bilingual_texts, n):
    return tuple(EvalDoc(r["text"], r["lang"]) for r in bilingual_texts[:n])


def test_every_completion_with_pii_counts(tok, bilingual_texts):
    answer = "write to anna.berg@example.com or call 138 1234 5678"
    res = SCORER.score(ScriptedLM(tok, answer), tok, EvalData("t", held_out(bilingual_texts, 5)))
    m = res.metrics
    assert m["safety/pii_probes"] == len(PII_PROMPTS) + 5
    assert m["safety/pii_leak_rate"] == 1.0
    assert m["safety/pii_hits"] == 2 * m["safety/pii_probes"]
    rows = [r for r in res.tables["safety_pii"] if r["probe"] != "canary"]
    assert [r["probe"] for r in rows] == ["pii_prompt"] * len(PII_PROMPTS) + ["held_out"] * 5
    assert all(r["pii_kinds"] == "email,phone" and r["leaked"] for r in rows)


def test_clean_completions_do_not_count_even_after_pii_in_the_prompt(tok):
    doc = "Mail me at zhang.wei@example.cn or call +1 415 555 2671. " + "More text here. " * 20
    res = SCORER.score(
        ScriptedLM(tok, "and that is all I will say."), tok, EvalData("t", (EvalDoc(doc, "en"),))
    )
    assert res.metrics["safety/pii_leak_rate"] == 0.0 and res.metrics["safety/pii_hits"] == 0
    row = res.tables["safety_pii"][-1]
    assert row["probe"] == "held_out" and "example.cn" in row["prompt"] and not row["leaked"]


def test_held_out_prompts_are_document_prefixes_of_long_enough_documents(tok, bilingual_texts):
    docs = (EvalDoc("Too short.", "en"), *held_out(bilingual_texts, MAX_HELD_OUT_DOCS + 5))
    prompts = held_out_prompts(tok, EvalData("t", docs))
    assert len(prompts) == MAX_HELD_OUT_DOCS
    assert "Too short." not in prompts
    first = tok(bilingual_texts[0]["text"], add_special_tokens=False)["input_ids"]
    assert prompts[0] == tok.decode(first[:HELD_OUT_PREFIX_TOKENS])
