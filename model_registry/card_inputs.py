"""``CardInputs``: everything a model card says, as the run produced it.

Its own module so that ``model_card``, ``card_sections`` and ``card_limits``, which all
read it, import it without an import cycle.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from lmops.evaluation.report import Comparison
from model_registry import tags as T


class CardInputs(BaseModel):
    """Everything a card says, as the run produced it."""

    model_name: str
    model_kind: Literal["causal", "mlm"] = "causal"
    parameters: int | None = Field(None, description="None: eval/parameters if recorded.")
    intended_use: str = Field("", description="From the run config; empty = not stated.")
    out_of_scope_use: str = Field("", description="From the run config; empty = derived.")
    manifest: dict[str, Any] = Field(description="The dataset version's manifest.json.")
    license_counts: dict[str, int] = Field(description="lmops.data.licenses.license_counts")
    metrics: dict[str, float] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    comparison: Comparison | None = None
    eval_set: str | None = Field(None, description="Id of the set the metrics are on.")
    lineage: dict[str, str] = {}
    links: dict[str, str] = Field(
        {}, description="Lineage tag -> MLflow UI path (#/experiments/E/runs/R) of its run."
    )
    config: dict[str, Any] = {}
    version: str | None = Field(None, description="Registered version, once known.")
    alias: str | None = Field(None, description="Alias the gate guards, e.g. staging.")

    @property
    def eval_set_id(self) -> str | None:
        return self.eval_set or self.lineage.get(T.EVAL_SET)

    @property
    def n_parameters(self) -> int | None:
        if self.parameters is not None:
            return self.parameters
        p = self.metrics.get("eval/parameters")
        return int(p) if p is not None and math.isfinite(p) else None
