import numpy as np
import torch

from lmops.evaluation.perplexity import strided_perplexity
from lmops.models.presets import build_hf_config, build_model
from pipelines.run_config import load_run_config


def test_untrained_model_scores_near_uniform_and_counts_each_token_once():
    cfg = load_run_config("tiny").model
    torch.manual_seed(0)
    model = build_model(build_hf_config(cfg, vocab_size=300, bos_id=0, eos_id=0, pad_id=1))
    tokens = np.random.default_rng(0).integers(0, 300, size=500)
    out = strided_perplexity(model, tokens, max_len=64, stride=32)
    assert out["tokens"] == 499  # every token but the first is predicted exactly once
    assert 150 < out["perplexity"] < 600  # a random init is close to uniform (300)
