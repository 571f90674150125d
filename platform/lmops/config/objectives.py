"""The objectives' own settings: ``[train.clm]``, ``[train.mlm]`` and ``[train.sft]``.

The objectives themselves (batches, heads) are in ``lmops.training.objectives``; they
receive these models as their ``cfg``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ObjectiveConfig(BaseModel):
    """An objective's own settings (``[train.<objective>]`` in a run config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CLMConfig(ObjectiveConfig):
    """No settings of its own: the loss is the mean next-token cross-entropy."""


class MLMConfig(ObjectiveConfig):
    mask_prob: float = Field(0.15, gt=0, lt=1, description="Share of tokens selected.")
    mask_replace_prob: float = Field(0.8, ge=0, le=1, description="Selected → mask token.")
    random_replace_prob: float = Field(0.1, ge=0, le=1, description="Selected → random token.")


class SFTConfig(ObjectiveConfig):
    min_response_tokens: int = Field(
        1, ge=1, description="Examples with fewer response tokens after truncation are dropped."
    )
