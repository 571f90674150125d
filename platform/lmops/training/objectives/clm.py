"""Causal LM: predict every next token of packed blocks (the main pre-training path)."""

from __future__ import annotations

from lmops.training.objectives.base import PackedBlocks


class CausalLM(PackedBlocks):
    name = "clm"
    auto_class = "AutoModelForCausalLM"
    model_kind = "causal"

    def batch(self, data, rows, key, device) -> dict:
        x = self.blocks(data, rows, device)
        # transformers shifts the labels inside the model.
        return {"input_ids": x, "labels": x}
