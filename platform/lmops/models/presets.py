"""Models from the named presets (``lmops.config.presets``): ``build_hf_config`` turns a
``ModelConfig`` into a transformers config and ``build_model`` into a model, so that every
model is stored in Hugging Face format with safetensors.
"""

from __future__ import annotations

from lmops.errors import ConfigError


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
