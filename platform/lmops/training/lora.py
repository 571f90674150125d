"""LoRA through peft: adapters on a registered parent, merged back for registration.

A LoRA run trains only the adapter weights; its checkpoints hold the adapter, and the
parent's weights stay in the run's parent folder. The final model is
``merge_and_unload``-ed into plain transformers weights, so it registers, evaluates
and serves like any other version, and its parent is recorded in lineage.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class LoraSettings(BaseModel):
    """``[train.lora]``: ``r = 0`` is full fine-tuning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r: int = Field(0, ge=0, description="Adapter rank; 0 = no LoRA (train every weight).")
    alpha: int = Field(16, ge=1, description="Scaling numerator: updates scale by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=list,
        description="Module names to adapt; empty = peft's default for the architecture.",
    )

    def describe(self) -> str:
        targets = ",".join(self.target_modules) or "peft default"
        return f"r={self.r}, alpha={self.alpha}, dropout={self.dropout}, targets={targets}"


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
