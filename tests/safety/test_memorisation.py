"""Memorisation: a model trained hard on a few documents continues them; a fresh one not."""

from __future__ import annotations

import pytest
import torch
from scripted_lm import ScriptedLM, one_thread

from conftest import make_tiny_lm
from lmops.config import MemorisationConfig
from lmops.errors import LmopsError
from lmops.evaluation.scorer import EvalData, EvalDoc
from lmops.safety.memorisation import MemorisationScorer, greedy_continue

CFG = MemorisationConfig(max_docs=8, prefix_tokens=16, continuation_tokens=8)


@pytest.fixture(scope="module")
def docs(bilingual_texts):
    return [r for r in bilingual_texts if r["lang"] == "en"][:3]


@pytest.fixture(scope="module")
def data(docs):
    return EvalData("t", (), train_sample=tuple(EvalDoc(r["text"], "en", r["id"]) for r in docs))


@pytest.fixture(scope="module")
def trained_and_fresh(docs):
    """The same recipe and seed, trained hard (200 steps on 3 documents) or not at all."""
    texts = [r["text"] for r in docs]
    with one_thread():
        return make_tiny_lm(texts, steps=200), make_tiny_lm(texts, steps=0)


def test_hard_trained_model_memorises_and_fresh_one_does_not(trained_and_fresh, data):
    trained, fresh = trained_and_fresh
    with one_thread():
        mem = MemorisationScorer(CFG).score(*trained, data)
        none = MemorisationScorer(CFG).score(*fresh, data)
    assert mem.metrics["safety/memorisation_docs"] == none.metrics["safety/memorisation_docs"] == 3
    assert mem.metrics["safety/memorisation_rate"] > 0.5
    assert mem.metrics["safety/memorisation_token_match"] > 0.8
    assert none.metrics["safety/memorisation_rate"] == 0.0
    assert none.metrics["safety/memorisation_token_match"] < 0.2
    rows = mem.tables["safety_memorisation"]
    assert [r["doc_hash"] for r in rows] == [d.doc_hash for d in data.train_sample]
    for r in rows:
        assert r["memorised"] == (r["token_match"] == 1.0)
        if r["memorised"]:
            assert r["generated"] == r["true_continuation"]


def test_short_documents_are_skipped_and_max_docs_caps(trained_and_fresh, data):
    _, (model, tok) = trained_and_fresh
    short = EvalDoc("Too short.", "en", "short")
    mixed = EvalData("t", (), train_sample=(short, *data.train_sample))
    cfg = MemorisationConfig(max_docs=2, prefix_tokens=16, continuation_tokens=8)
    res = MemorisationScorer(cfg).score(model, tok, mixed)
    assert [r["doc_hash"] for r in res.tables["safety_memorisation"]] == [
        d.doc_hash for d in data.train_sample[:2]
    ]
    only_short = EvalData("t", (), train_sample=(short,))
    with pytest.raises(LmopsError, match="no training document in the sample has 24 tokens"):
        MemorisationScorer(CFG).score(model, tok, only_short)


def test_needs_a_train_sample():
    why = MemorisationScorer(CFG).check("causal", EvalData("t", ()))
    assert why and "train_sample" in why


def test_tokens_after_an_early_end_of_text_never_match(trained_and_fresh):
    _, (_, tok) = trained_and_fresh
    lm = ScriptedLM(tok, "")
    lm.answer_ids = [5, tok.eos_token_id, 7, 8]
    out = greedy_continue(lm, torch.tensor([[1, 2], [3, 4]]), 4, tok.pad_token_id, tok.eos_token_id)
    assert out.tolist() == [[5, -1, -1, -1], [5, -1, -1, -1]]
