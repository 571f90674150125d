"""Bias probes: sentence log-likelihood gaps between paired demographic terms."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from conftest import make_tiny_lm
from lmops.config import EvalConfig, TokenizerConfig
from lmops.errors import LmopsError
from lmops.evaluation.scorer import EvalData, scorer_class
from lmops.safety.bias import BiasScorer, load_pairs
from lmops.tokenizer import train_tokenizer

EVAL = EvalData("test", ())
PAIRS = load_pairs()
GENDER = [p for p in PAIRS if p["category"] == "gender"]
CATEGORIES = {"gender", "ethnicity_nationality", "religion", "age", "disability"}


@pytest.fixture(scope="module")
def skewed():
    """Trained on the gender pairs' ``a`` sentences only: one term always co-occurs."""
    return make_tiny_lm([p["a"] for p in GENDER] * 8, steps=20)


@pytest.fixture(scope="module")
def balanced():
    """The same sentences with both terms, equally often."""
    return make_tiny_lm([p[k] for p in GENDER for k in ("a", "b")] * 4, steps=20)


def test_pairs_differ_only_in_the_demographic_term():
    counts = Counter((p["lang"], p["category"]) for p in PAIRS)
    assert {c for _, c in counts} == CATEGORIES
    assert {lang for lang, _ in counts} == {"en", "zh"}
    assert all(6 <= n <= 10 for n in counts.values()), counts
    assert len({p["id"] for p in PAIRS}) == len(PAIRS)
    for p in PAIRS:
        assert p["term_a"] in p["a"] and p["term_a"] != p["term_b"], p["id"]
        assert p["a"].replace(p["term_a"], p["term_b"], 1) == p["b"], p["id"]


def _log_likelihood(model, tok, text: str) -> float:
    """One unpadded sequence after the BOS, token by token: no batching, no masks."""
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
            total += float(torch.log_softmax(logits.double(), dim=-1)[ids[t]])
    return total


def test_gaps_equal_an_independent_computation(skewed):
    model, tok = skewed
    too_long = {**GENDER[0], "id": "long", "a": "word " * 200, "b": "term " * 200}
    pairs = [PAIRS[0], PAIRS[13], PAIRS[47], PAIRS[71], too_long]  # en and zh, uneven lengths
    result = BiasScorer(pairs=pairs, batch_size=3).score(model, tok, EVAL)
    rows = result.tables["bias_pairs"]
    assert [r["id"] for r in rows] == [p["id"] for p in pairs[:4]]
    assert result.metrics["bias/pairs"] == 4 and result.metrics["bias/pairs_skipped"] == 1
    gaps = []
    for row, p in zip(rows, pairs[:4], strict=True):
        ll_a, ll_b = _log_likelihood(model, tok, p["a"]), _log_likelihood(model, tok, p["b"])
        assert row["ll_a"] == pytest.approx(ll_a, abs=1e-3)
        assert row["ll_b"] == pytest.approx(ll_b, abs=1e-3)
        assert row["gap"] == pytest.approx(ll_a - ll_b, abs=2e-3)
        n_a = len(tok(p["a"], add_special_tokens=False)["input_ids"])
        assert row["n_a"] == n_a
        gaps.append(ll_a - ll_b)
    assert result.metrics["bias/mean_abs_gap"] == pytest.approx(sum(map(abs, gaps)) / 4, abs=2e-3)
    assert result.metrics["bias/max_abs_gap"] == pytest.approx(max(map(abs, gaps)), abs=2e-3)
    assert result.metrics["bias/preference_rate"] == sum(g > 0 for g in gaps) / 4


def test_training_on_one_term_widens_that_categorys_gap(skewed, balanced):
    s = BiasScorer(pairs=GENDER).score(*skewed, EVAL).metrics
    b = BiasScorer(pairs=GENDER).score(*balanced, EVAL).metrics
    assert s["bias/mean_abs_gap_gender"] > 3 * b["bias/mean_abs_gap_gender"]
    assert s["bias/preference_rate"] == 1.0  # every pair prefers the term it saw
    assert b["bias/preference_rate"] < 1.0


def test_full_probe_reports_every_category(balanced):
    result = BiasScorer.from_config(EvalConfig()).score(*balanced, EVAL)
    assert result.metrics["bias/pairs"] == len(PAIRS)
    assert {k.removeprefix("bias/mean_abs_gap_") for k in result.metrics} >= CATEGORIES
    assert len(result.tables["bias_pairs"]) == len(PAIRS)


def test_masked_lm_uses_pseudo_log_likelihood():
    from transformers import BertConfig, BertForMaskedLM

    tok = train_tokenizer(
        [p[k] for p in GENDER for k in ("a", "b")], TokenizerConfig(vocab_size=300, min_frequency=1)
    )
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok) + 1,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertForMaskedLM(cfg).eval()
    with pytest.raises(LmopsError, match="mask token"):
        BiasScorer(pairs=GENDER[:1]).score(model, tok, EVAL)
    tok.add_special_tokens({"mask_token": "<|mask|>"})

    def pll(text: str) -> float:  # mask one position at a time, one forward each
        ids = tok(text)["input_ids"]
        total = 0.0
        with torch.no_grad():
            for i in range(len(ids)):
                x = torch.tensor([ids])
                x[0, i] = tok.mask_token_id
                logp = torch.log_softmax(model(input_ids=x).logits[0, i].double(), dim=-1)
                total += float(logp[ids[i]])
        return total

    rows = BiasScorer(pairs=GENDER[:2], batch_size=4).score(model, tok, EVAL).tables["bias_pairs"]
    for row, p in zip(rows, GENDER[:2], strict=True):
        assert row["ll_a"] == pytest.approx(pll(p["a"]), abs=1e-3)
        assert row["ll_b"] == pytest.approx(pll(p["b"]), abs=1e-3)


def test_empty_pair_list_is_a_clear_error(balanced):
    with pytest.raises(LmopsError, match="no sentence pairs"):
        BiasScorer(pairs=[]).score(*balanced, EVAL)


def test_scorer_is_registered_for_both_model_kinds():
    assert scorer_class("bias") is BiasScorer
    assert BiasScorer.kinds == {"causal", "mlm"}
