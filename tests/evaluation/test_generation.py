import json

import pytest
import torch
from pydantic import ValidationError

from lmops.config import DecodingConfig, EvalConfig, GenerationConfig
from lmops.errors import LmopsError
from lmops.evaluation.generation import GenerationScorer, distinct_n
from lmops.evaluation.scorer import EvalData

DATA = EvalData("t", held_out=())
SAMPLED = ("top_k", "top_p", "temperature")


def _score(model, tok, **gen):
    cfg = EvalConfig(generation=GenerationConfig(**gen))
    return GenerationScorer.from_config(cfg).score(model, tok, DATA)


def test_every_strategy_continues_every_prompt(tiny_lm):
    model, tok = tiny_lm
    out = _score(model, tok, max_new_tokens=8)
    prompts = GenerationConfig().prompts
    rows = out.tables["eval_samples"]
    strategies = ["greedy", "beam", "top_k", "top_p", "temperature"]
    assert [(r["strategy"], r["prompt"]) for r in rows] == [
        (s, p) for s in strategies for p in prompts
    ]
    assert all(0 < r["new_tokens"] <= 8 and r["completion"] for r in rows)
    json.dumps(out.tables)
    greedy = [r["new_tokens"] for r in rows if r["strategy"] == "greedy"]
    m = out.metrics
    assert m["eval/min_new_tokens"] == min(greedy)
    assert m["eval/mean_new_tokens"] == pytest.approx(sum(greedy) / len(greedy))
    for s in strategies:
        assert 0 < m[f"eval/distinct_2_{s}"] <= 1
    assert len(m) == 2 + len(strategies)


@torch.no_grad()
def test_greedy_is_deterministic_and_batching_changes_nothing(tiny_lm):
    model, tok = tiny_lm
    greedy = {"greedy": DecodingConfig()}
    batched = _score(model, tok, strategies=greedy, max_new_tokens=12, batch_size=16)
    single = _score(model, tok, strategies=greedy, max_new_tokens=12, batch_size=1)
    assert batched == single
    # And equal to transformers' generate on each prompt alone, with no padding at all.
    for row in batched.tables["eval_samples"]:
        ids = torch.tensor([tok(row["prompt"], add_special_tokens=False)["input_ids"]])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=12,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )[0, ids.shape[1] :]
        assert row["completion"] == tok.decode(out, skip_special_tokens=True)


def test_seeded_sampling_repeats_and_the_seed_matters(tiny_lm):
    model, tok = tiny_lm
    strategies = {k: v for k, v in GenerationConfig().strategies.items() if k in SAMPLED}
    a = _score(model, tok, strategies=strategies, max_new_tokens=16)
    assert a == _score(model, tok, strategies=strategies, max_new_tokens=16)
    reseeded = {k: v.model_copy(update={"seed": 1}) for k, v in strategies.items()}
    b = _score(model, tok, strategies=reseeded, max_new_tokens=16)
    assert a.tables["eval_samples"] != b.tables["eval_samples"]


def test_empty_prompts_or_strategies_are_clear_errors(tiny_lm):
    model, tok = tiny_lm
    with pytest.raises(ValidationError, match="prompts"):
        GenerationConfig(prompts=[])  # a run config cannot ask for it...
    # ...and a scorer built around validation still gets generate_batch's error.
    scorer = GenerationScorer(GenerationConfig.model_construct(prompts=[]))
    with pytest.raises(LmopsError, match="prompt list is empty"):
        scorer.score(model, tok, DATA)
    with pytest.raises(LmopsError, match="strategies is empty"):
        _score(model, tok, strategies={})


def test_lengths_come_from_the_first_strategy_without_greedy(tiny_lm):
    model, tok = tiny_lm
    out = _score(model, tok, strategies={"beam": DecodingConfig(num_beams=2)}, max_new_tokens=4)
    lengths = [r["new_tokens"] for r in out.tables["eval_samples"]]
    assert out.metrics["eval/min_new_tokens"] == min(lengths)


def test_distinct_2_counts_repeated_bigrams():
    assert distinct_n([[1, 2, 1, 2, 1, 2]]) == pytest.approx(2 / 5)
    assert distinct_n([[1, 2, 3], [1, 2]]) == pytest.approx(2 / 3)  # pooled over completions
    assert distinct_n([[5], []]) == 0.0
