"""Batched generation with transformers ``generate`` under one ``DecodingConfig``.

Every scorer that generates (samples, prompt tasks, red team, probes) calls
:func:`generate_batch`, so all of them decode the same way and in batches:
prompts are left-padded (a decoder continues from the last real token) and
sampled strategies are seeded, so an evaluation repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmops.config import DecodingConfig
from lmops.errors import LmopsError


@dataclass(frozen=True)
class Generation:
    prompt: str
    completion: str
    new_tokens: int


def _encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    # An empty prompt still needs one token to condition on: the document separator.
    return [row if row else [bos] for row in ids]


@torch.no_grad()
def generate_batch(
    model,
    tokenizer,
    prompts: list[str],
    decoding: DecodingConfig,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
) -> list[Generation]:
    """Continue every prompt; returns one :class:`Generation` per prompt, in order."""
    if not prompts:
        raise LmopsError("generation needs at least one prompt; the prompt list is empty")
    model.eval()
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    kwargs = decoding.generate_kwargs()
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = max_new_tokens
    encoded = _encode_prompts(tokenizer, prompts)
    out: list[Generation] = []
    gen = torch.Generator(device="cpu").manual_seed(decoding.seed)
    for start in range(0, len(prompts), batch_size):
        rows = encoded[start : start + batch_size]
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention[i, width - len(row) :] = 1
        if decoding.do_sample:
            # One seed per batch drawn from the run's generator: repeatable, and
            # independent of how many batches came before on other devices.
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        result = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention.to(model.device),
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            **kwargs,
        )
        new = result[:, width:].cpu()
        for i, prompt in enumerate(prompts[start : start + batch_size]):
            toks = new[i]
            # Tokens after the first end-of-text are padding generate added.
            eos_at = (toks == tokenizer.eos_token_id).nonzero()
            n = int(eos_at[0, 0]) if len(eos_at) else int(toks.numel())
            text = tokenizer.decode(toks[:n], skip_special_tokens=True)
            out.append(Generation(prompt, text, n))
    return out
