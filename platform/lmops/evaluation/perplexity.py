"""Held-out perplexity with a strided sliding window (the Hugging Face recipe).

Each window scores only the tokens not already scored by the previous window;
its context tokens are masked to -100, so every token is predicted with up to
``max_len`` tokens of context and counted exactly once.
"""

from __future__ import annotations

import math

import numpy as np
import torch


@torch.no_grad()
def strided_perplexity(model, tokens: np.ndarray, max_len: int, stride: int) -> dict:
    """Perplexity and mean NLL over ``tokens`` (a 1-D id array)."""
    model.eval()
    ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64)).unsqueeze(0)
    n = ids.size(1)
    nll_sum, counted, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + max_len, n)
        target_len = end - prev_end
        x = ids[:, begin:end]
        labels = x.clone()
        labels[:, :-target_len] = -100
        out = model(input_ids=x, labels=labels)
        # The model shifts labels by one, so a window scores (its scored tokens - 1)
        # when the first label is unmasked; count what it actually averaged over.
        scored = int((labels[:, 1:] != -100).sum())
        if scored:
            nll_sum += out.loss.float().item() * scored
            counted += scored
        prev_end = end
        if end == n:
            break
    mean_nll = nll_sum / max(counted, 1)
    return {"perplexity": math.exp(min(mean_nll, 50)), "nll": mean_nll, "tokens": counted}
