"""Per-request decoding settings and the token choice for a batch of rows.

Why our own token choice instead of transformers' logits warpers: those take one
temperature, top-k and top-p for the whole batch, while a server batches requests that
each bring their own. The selection below is the same arithmetic (temperature scaling,
top-k cut, nucleus cut that always keeps the most likely token) applied row by row in
one vectorised pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """One request's decoding, in OpenAI terms (``temperature = 0`` means greedy)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    stop: tuple[str, ...] = ()
    beam_width: int = 1  # > 1: beam search (vLLM's ``use_beam_search``)
    beam_rank: int = 0  # which of the final beams this completion returns (0 = best)
    logprobs: int | None = None  # alternatives returned per token; None = no logprobs
    ignore_eos: bool = False
    frequency_penalty: float = 0.0  # OpenAI's; applied by lmops.serving.penalties
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or (self.top_k == 1)


def choose_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator | None],
) -> torch.Tensor:
    """The next token of every row: argmax for greedy rows, a seeded draw otherwise."""
    greedy = [p.greedy for p in params]
    if all(greedy):
        return logits.argmax(dim=-1)
    dev = logits.device
    # A temperature that rounds to 0 in float32 would divide by zero: floor it.
    temps = torch.tensor([max(p.temperature, 1e-4) for p in params], device=dev)
    vocab = logits.shape[-1]
    ks = torch.tensor([p.top_k if p.top_k > 0 else vocab for p in params], device=dev)
    ps = torch.tensor([p.top_p for p in params], device=dev)
    scaled = logits.float() / temps[:, None]
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    ranks = torch.arange(vocab, device=dev)[None, :]
    cut = ranks >= ks[:, None]
    probs = torch.softmax(sorted_logits.masked_fill(cut, float("-inf")), dim=-1)
    # Mass strictly before a token: the first token always stays (its prefix mass is 0).
    before = probs.cumsum(dim=-1) - probs
    cut |= before >= ps[:, None]
    cut[:, 0] = False  # the most likely token always stays (top_p may round to 0 in float32)
    probs = torch.softmax(sorted_logits.masked_fill(cut, float("-inf")), dim=-1)
    out = logits.argmax(dim=-1)
    for i in range(len(params)):
        if not greedy[i]:
            j = torch.multinomial(probs[i], 1, generator=generators[i])
            out[i] = order[i, j[0]]
    return out


def token_logprobs(
    logits: torch.Tensor, chosen: torch.Tensor, top: int
) -> tuple[list[float], list[list[tuple[int, float]]]]:
    """The model's log-probability of each chosen token and its ``top`` alternatives.

    These are the model's own distribution (before temperature and cuts), as vLLM
    returns by default.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(1, chosen[:, None])[:, 0].tolist()
    alts: list[list[tuple[int, float]]] = [[] for _ in range(logits.shape[0])]
    if top > 0:
        vals, idx = logp.topk(top, dim=-1)
        alts = [
            list(zip(i.tolist(), v.tolist(), strict=True)) for i, v in zip(idx, vals, strict=True)
        ]
    return picked, alts
