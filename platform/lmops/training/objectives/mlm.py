"""Masked LM (BERT/RoBERTa): predict masked tokens of packed blocks (the article §4.2).

Masks come from transformers' ``DataCollatorForLanguageModeling``: ``mask_prob`` of the
non-special tokens are selected; of those, 80 % become the mask token, 10 % a random
token and 10 % stay. Its generator is reseeded for every micro-batch from the seed,
step and rank, so a resumed run draws the same masks.
"""

from __future__ import annotations

from lmops.config.objectives import MLMConfig
from lmops.training.objectives.base import PackedBlocks

MASK_TOKEN = "<|mask|>"


def add_mask_token(tokenizer) -> None:
    """Give a tokenizer trained without one a mask token (appended to the vocabulary)."""
    if tokenizer.mask_token is None:
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})


class MaskedLM(PackedBlocks):
    name = "mlm"
    auto_class = "AutoModelForMaskedLM"
    model_kind = "mlm"

    def __init__(self, cfg: MLMConfig, tokenizer, seq_len: int):
        import torch
        from transformers import DataCollatorForLanguageModeling

        super().__init__(cfg, tokenizer, seq_len)
        if tokenizer.mask_token is None:
            raise ValueError("the MLM objective needs a tokenizer with a mask token")
        self.collator = DataCollatorForLanguageModeling(
            tokenizer,
            mlm=True,
            mlm_probability=cfg.mask_prob,
            mask_replace_prob=cfg.mask_replace_prob,
            random_replace_prob=cfg.random_replace_prob,
            return_tensors="pt",
        )
        self.special = torch.tensor(sorted(tokenizer.all_special_ids))

    def batch(self, data, rows, key, device) -> dict:
        import os

        import torch

        x = self.blocks(data, rows, "cpu")
        self.collator.generator = torch.Generator().manual_seed(key)
        self.collator._generator_pid = os.getpid()  # the collator's own fork check
        inputs, labels = self.collator.torch_mask_tokens(x, torch.isin(x, self.special))
        return {"input_ids": inputs.to(device), "labels": labels.to(device)}

    def val_metrics(self, logits, batch: dict) -> dict[str, tuple[float, float]]:
        sel = batch["labels"] != -100
        correct = (logits.argmax(-1)[sel] == batch["labels"][sel]).sum()
        return {"val/masked_accuracy": (float(correct), float(sel.sum()))}
