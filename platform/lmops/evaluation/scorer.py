"""The scorer contract: every quality, safety and ethics check is one ``Scorer``.

A scorer has a name, declares what it needs (model kinds and data fields) and
implements ``score(model, tokenizer, data) -> ScoreResult``. The suite is a list of
scorer names in the run config (``eval.scorers``); ``lmops.evaluation.suite`` builds
them from the registry below, checks their needs before any model runs, and merges
their results.

Metric names are ``<family>/<name>`` with family ``eval``, ``safety`` or ``bias``;
they become model-version tags ``<family>.<name>`` in the registry.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from lmops.config.suites import SUITES
from lmops.errors import ConfigError

ModelKind = Literal["causal", "mlm"]


@dataclass(frozen=True)
class EvalDoc:
    """One document of an evaluation set."""

    text: str
    lang: str
    doc_hash: str = ""


@dataclass(frozen=True)
class Canary:
    """A planted secret: the probe prompts with ``prefix`` and looks for ``secret``."""

    id: str
    prefix: str
    secret: str


@dataclass(frozen=True)
class EvalData:
    """What scorers read. Built once per evaluation set (``eval_set_id``) and shared.

    ``held_out`` are validation documents the model never trained on; ``train_sample``
    are training documents (for the memorisation probe); ``canaries`` are the secrets
    planted in the training data that made it through ingest.
    """

    eval_set_id: str
    held_out: tuple[EvalDoc, ...]
    train_sample: tuple[EvalDoc, ...] = ()
    canaries: tuple[Canary, ...] = ()
    dataset_version: str | None = None

    def has(self, field_name: str) -> bool:
        return bool(getattr(self, field_name))


@dataclass
class ScoreResult:
    """Metrics (``family/name`` → float) and tables (name → rows) from one scorer."""

    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def merge(self, other: ScoreResult) -> None:
        clash = set(self.metrics) & set(other.metrics) | set(self.tables) & set(other.tables)
        if clash:
            raise ValueError(f"two scorers produced the same keys: {sorted(clash)}")
        self.metrics.update(other.metrics)
        self.tables.update(other.tables)


class Scorer(ABC):
    """One evaluation unit. Subclasses set ``name``, ``kinds`` and ``needs``."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]] = frozenset({"causal"})
    needs: ClassVar[tuple[str, ...]] = ()  # EvalData fields that must be non-empty

    @classmethod
    @abstractmethod
    def from_config(cls, cfg) -> Scorer:
        """Build from the run's ``EvalConfig``; read only your own section."""

    @abstractmethod
    def score(self, model, tokenizer, data: EvalData) -> ScoreResult: ...

    def check(self, kind: str, data: EvalData) -> str | None:
        """Why this scorer cannot run here, or None. Checked before any model runs."""
        if kind not in self.kinds:
            return f"scorer '{self.name}' needs a {'/'.join(sorted(self.kinds))} model, got {kind}"
        missing = [f for f in self.needs if not data.has(f)]
        if missing:
            return f"scorer '{self.name}' needs evaluation data {missing}, which is empty"
        return None


# name -> "module:Class". Imported lazily so a suite pays only for what it uses.
SCORERS: dict[str, str] = {
    "perplexity": "lmops.evaluation.perplexity:PerplexityScorer",
    "masked_accuracy": "lmops.evaluation.mlm:MaskedAccuracyScorer",
    "generation": "lmops.evaluation.generation:GenerationScorer",
    "prompt_tasks": "lmops.evaluation.prompt_tasks:PromptTaskScorer",
    "redteam": "lmops.safety.redteam:RedTeamScorer",
    "pii_leak": "lmops.safety.pii_leak:PiiLeakScorer",
    "memorisation": "lmops.safety.memorisation:MemorisationScorer",
    "bias": "lmops.safety.bias:BiasScorer",
}


def scorer_class(name: str) -> type[Scorer]:
    if name not in SCORERS:
        raise ConfigError(f"unknown scorer '{name}'; known scorers: {sorted(SCORERS)}")
    module, cls = SCORERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def suite_names(name: str) -> list[str]:
    if name not in SUITES:
        raise ConfigError(f"unknown suite '{name}'; known suites: {sorted(SUITES)}")
    return list(SUITES[name])
