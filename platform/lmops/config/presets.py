"""Named model presets: the platform's model standard, as settings.

A preset is a set of ``ModelConfig`` fields; a run config names one and may override
single fields. Turning the resulting config into a transformers model is
``lmops.models.presets.build_model``'s job; this table is plain data, so config loading
needs no model code.
"""

from __future__ import annotations

from typing import Any

from lmops.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # Trains in seconds on one CPU core: tests and CI.
    "debug": dict(
        arch="llama", hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192, seq_len=64
    ),
    # ~4M parameters with a 4k vocabulary: recognisable text after minutes on 2 cores
    # (about 5k tokens/s there; an 8k vocabulary measured several times slower).
    "small": dict(
        arch="llama", hidden_size=256, num_layers=4, num_heads=4, intermediate_size=688, seq_len=128
    ),
    # GPT-2 124M shape, for a GPU (bf16 on H100/H200).
    "gpt2-124m": dict(
        arch="gpt2",
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=3072,
        seq_len=1024,
    ),
    # Llama-style ~350M, for one H200.
    "llama-350m": dict(
        arch="llama",
        hidden_size=1024,
        num_layers=24,
        num_heads=16,
        intermediate_size=2816,
        seq_len=2048,
    ),
    # Llama-3.2-1B shape (16 layers, 2048 wide, 8 key/value heads), for one H200 with
    # FSDP across GPUs when there are more: about 1.0B parameters with a 32k vocabulary.
    "llama-1b": dict(
        arch="llama",
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=8192,
        seq_len=2048,
    ),
}


def apply_preset(model_tree: dict[str, Any]) -> dict[str, Any]:
    """Fill fields from the named preset; explicit fields win."""
    name = model_tree.get("preset", "debug")
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'; choose one of {sorted(PRESETS)}")
    return {**PRESETS[name], **model_tree, "preset": name}
