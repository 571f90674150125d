"""Sample generations for the standard prompts, with transformers' ``generate``."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate_samples(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[dict]:
    """Greedy continuations: deterministic, so two versions are compared on equal terms."""
    model.eval()
    rows = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = out[0, enc["input_ids"].shape[1] :]
        rows.append(
            {
                "prompt": prompt,
                "completion": tokenizer.decode(new, skip_special_tokens=True),
                "new_tokens": int(new.numel()),
            }
        )
    return rows
