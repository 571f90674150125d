"""``[train.lora]``: the LoRA adapter settings; ``lmops.training.lora`` applies them with peft."""

from __future__ import annotations

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
