"""OpenAI's ``frequency_penalty``, ``presence_penalty`` and ``logit_bias`` as a batched
transformers ``LogitsProcessor``.

OpenAI defines them on the logits of token ``j``, with ``c[j]`` the times ``j`` was
generated so far in this completion (the prompt does not count, as in vLLM)::

    logits[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty
    logits[j] += logit_bias[j]

Why our own processor: transformers has none of these in OpenAI's form (its
``RepetitionPenaltyLogitsProcessor`` divides by a factor and counts the prompt, and
``SequenceBiasLogitsProcessor`` takes one bias for the whole batch), while a server
batches requests that each bring their own values. This applies each row's values in one
vectorised pass; the same class serves the engine's continuous batches and
``generate`` (beam search), through the ``LogitsProcessor`` interface.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from lmops.serving.sampling import SamplingParams

LOGIT_BIAS_MAX_ENTRIES = 300  # OpenAI's own limit on the map
LOGIT_BIAS_RANGE = 100.0


def needs_penalties(params: list[SamplingParams]) -> bool:
    return any(p.frequency_penalty or p.presence_penalty or p.logit_bias for p in params)


class OpenAIPenalties(LogitsProcessor):
    """Per-row penalties and biases for a batch of ``params``.

    ``__call__(input_ids, scores)`` takes each row's token ids so far: ``input_ids``
    holds the generated tokens, after ``prompt_len`` prompt columns (``generate`` passes
    prompt and output together); ids below 0 are padding.
    """

    def __init__(self, params: list[SamplingParams], vocab: int, prompt_len: int = 0):
        self.freq = torch.tensor([p.frequency_penalty for p in params], dtype=torch.float32)
        self.pres = torch.tensor([p.presence_penalty for p in params], dtype=torch.float32)
        rows = [i for i, p in enumerate(params) for _ in p.logit_bias]
        cols = [t for p in params for t, _ in p.logit_bias]
        vals = [b for p in params for _, b in p.logit_bias]
        if cols and (min(cols) < 0 or max(cols) >= vocab):
            raise ValueError(f"logit_bias names a token id outside the vocabulary (0-{vocab - 1})")
        self.bias_at = (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
        self.bias = torch.tensor(vals, dtype=torch.float32)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        dev = scores.device
        out_ids = input_ids[:, self.prompt_len :]
        scores = scores.float()
        if out_ids.shape[1] and (self.freq.any() or self.pres.any()):
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, out_ids.clamp_min(0), (out_ids >= 0).to(scores.dtype))
            scores = (
                scores
                - counts * self.freq.to(dev)[:, None]
                - (counts > 0).to(scores.dtype) * self.pres.to(dev)[:, None]
            )
        if self.bias.numel():
            rows, cols = (t.to(dev) for t in self.bias_at)
            scores = scores.index_put((rows, cols), self.bias.to(dev), accumulate=True)
        return scores


def padded_ids(rows: list[list[int]], device) -> torch.Tensor:
    """Each row's generated ids, right-padded with -1 into one tensor."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.tensor(r)
    return out.to(device)
