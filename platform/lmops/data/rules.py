"""The data standard as a loaded object: thresholds from ``standards/<name>.toml``.

A run config may override quality thresholds per language; overrides are part of
the ingest config and therefore of the dataset version id.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lmops.data import quality
from lmops.errors import ConfigError

STANDARDS_DIR = Path(__file__).with_name("standards")


@dataclass(frozen=True)
class Standard:
    """Everything the per-document stage needs to decide; picklable for worker processes."""

    name: str
    version: str
    expectation_suite: str
    allowed_langs: tuple[str, ...]
    min_lang_score: float
    redact_pii: bool
    max_pii_hits: int
    toxicity_threshold: float
    exact_dedup: bool
    near_dedup: bool
    min_jaccard: float
    against_previous: bool
    quality_enabled: bool
    thresholds: dict[str, quality.QualityThresholds] = field(default_factory=dict)
    min_chars: int = 1
    max_chars: int = 1_000_000

    def thresholds_for(self, lang: str) -> quality.QualityThresholds:
        base = lang.split("-")[0].lower()
        return self.thresholds.get(base) or quality.thresholds_for(lang)


def _apply_overrides(base: quality.QualityThresholds, overrides: dict, where: str):
    names = {f.name for f in dataclasses.fields(base)}
    clean = {}
    for k, v in overrides.items():
        if k not in names:
            raise ConfigError(f"{where}: unknown quality threshold '{k}'; known: {sorted(names)}")
        clean[k] = tuple(tuple(x) for x in v) if isinstance(v, list) else v
    try:
        return dataclasses.replace(base, **clean)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def load_standard(data_cfg) -> Standard:
    """The standard named by ``data_cfg.standard`` with the config's overrides applied."""
    name = data_cfg.standard
    path = Path(name) if name.endswith(".toml") else STANDARDS_DIR / f"{name}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in STANDARDS_DIR.glob("*.toml"))
        raise ConfigError(f"data standard '{name}' not found; known: {known}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"data standard {path} is not valid TOML: {e}") from None
    q = raw.get("quality", {})
    thresholds = {}
    for lang, base in (("en", quality.EN_DEFAULTS), ("zh", quality.ZH_DEFAULTS)):
        th = _apply_overrides(base, q.get(lang, {}), f"{path} [quality.{lang}]")
        th = _apply_overrides(
            th, data_cfg.quality_overrides.get(lang, {}), f"data.quality_overrides.{lang}"
        )
        thresholds[lang] = th
    lang, pii, tox, dd = raw["language"], raw["pii"], raw["toxicity"], raw["dedup"]
    return Standard(
        name=path.stem,
        version=raw["version"],
        expectation_suite=raw["expectation_suite"],
        allowed_langs=tuple(data_cfg.allowed_langs or lang["allowed"]),
        min_lang_score=float(lang["min_score"]),
        redact_pii=bool(pii["redact"]),
        max_pii_hits=int(pii["max_hits"]),
        toxicity_threshold=float(tox["threshold"]),
        exact_dedup=bool(dd["exact"]),
        near_dedup=bool(dd["near"]) and data_cfg.near_dedup,
        min_jaccard=float(dd["min_jaccard"]),
        against_previous=bool(dd["against_previous_versions"]),
        quality_enabled=bool(q.get("enabled", True)) and data_cfg.quality_rules,
        thresholds=thresholds,
        min_chars=data_cfg.min_chars,
        max_chars=data_cfg.max_chars,
    )
