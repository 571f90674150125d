"""Named model presets: the platform's model standard.

A preset is a set of ``ModelConfig`` fields; a run config names one and may
override single fields. ``build_model`` turns the config into a transformers
model so that every model is stored in Hugging Face format with safetensors.
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


def build_hf_config(model_cfg, vocab_size: int, bos_id: int, eos_id: int, pad_id: int):
    """The transformers config for ``model_cfg``."""
    if model_cfg.num_kv_heads and model_cfg.num_heads % model_cfg.num_kv_heads:
        raise ConfigError(
            f"model.num_heads ({model_cfg.num_heads}) must be a multiple of "
            f"model.num_kv_heads ({model_cfg.num_kv_heads})"
        )
    if model_cfg.hidden_size % model_cfg.num_heads:
        raise ConfigError(
            f"model.hidden_size ({model_cfg.hidden_size}) must be divisible by "
            f"model.num_heads ({model_cfg.num_heads})"
        )
    common = dict(
        vocab_size=vocab_size,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )
    if model_cfg.arch == "bert":
        from transformers import BertConfig

        return BertConfig(
            hidden_size=model_cfg.hidden_size,
            num_hidden_layers=model_cfg.num_layers,
            num_attention_heads=model_cfg.num_heads,
            intermediate_size=model_cfg.intermediate_size,
            max_position_embeddings=model_cfg.seq_len,
            type_vocab_size=1,
            hidden_dropout_prob=model_cfg.dropout,
            attention_probs_dropout_prob=model_cfg.dropout,
            **common,
        )
    if model_cfg.arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            n_embd=model_cfg.hidden_size,
            n_layer=model_cfg.num_layers,
            n_head=model_cfg.num_heads,
            n_inner=model_cfg.intermediate_size,
            n_positions=model_cfg.seq_len,
            resid_pdrop=model_cfg.dropout,
            embd_pdrop=model_cfg.dropout,
            attn_pdrop=model_cfg.dropout,
            **common,
        )
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_kv_heads or model_cfg.num_heads,
        intermediate_size=model_cfg.intermediate_size,
        max_position_embeddings=model_cfg.seq_len,
        attention_dropout=model_cfg.dropout,
        **common,
    )


def build_model(hf_config):
    """A freshly initialised model for ``hf_config``: masked LM for BERT, else causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    if hf_config.model_type == "bert":
        return AutoModelForMaskedLM.from_config(hf_config)
    return AutoModelForCausalLM.from_config(hf_config)
