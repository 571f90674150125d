"""LoRA through peft: adapters on a registered parent, merged back for registration.

A LoRA run trains only the adapter weights; its checkpoints hold the adapter, and the
parent's weights stay in the run's parent folder. The final model is
``merge_and_unload``-ed into plain transformers weights, so it registers, evaluates
and serves like any other version, and its parent is recorded in lineage.
"""

from __future__ import annotations

from pathlib import Path

from lmops.config.lora import LoraSettings


def wrap(model, cfg: LoraSettings, task: str):
    """The model with trainable LoRA adapters and every base weight frozen."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules) or None,
        task_type=TaskType.CAUSAL_LM if task == "causal" else None,
    )
    return get_peft_model(model, lora)


def resume(base, adapter_dir: Path):
    """The base model with the adapter of a checkpoint, trainable again."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)


def merged(base, adapter_dir: Path):
    """Plain transformers weights: base + adapter update, adapters removed."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / "adapter_config.json").exists()
