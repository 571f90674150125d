"""Lineage of a registered version: version → run → dataset → sources, and the rest.

Everything is read from the registry (version tags) and the dataset version's
manifest; a link that is not recorded is shown as "not recorded", never guessed.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError
from model_registry import tags as T

NOT_RECORDED = "not recorded"


def resolve(ref: str):
    """``NAME@ALIAS`` or ``NAME/VERSION`` → the model version."""
    client = MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = ref.rpartition("/")
        if not name:
            raise LmopsError(f"'{ref}': give NAME@ALIAS or NAME/VERSION")
        return client.get_model_version(name, version)
    except MlflowException:
        raise LmopsError(f"'{ref}' is not in the registry; see `lmops models show NAME`") from None


def lineage(ref: str, datasets_root: Path) -> dict:
    mv = resolve(ref)
    t = mv.tags
    ds = t.get(T.DATASET_VERSION)
    chain: dict = {
        "version": f"{mv.name}/{mv.version}",
        "aliases": ", ".join(f"@{a}" for a in (mv.aliases or [])) or "none",
        "training run": mv.run_id or NOT_RECORDED,
        "registered by": t.get(T.REGISTERED_BY, NOT_RECORDED),
        "dataset version": ds or NOT_RECORDED,
        "ingest run": t.get(T.INGEST_RUN, NOT_RECORDED),
        "data validation": t.get(T.DATA_VALIDATION, NOT_RECORDED),
        "tokenizer": t.get(T.TOKENIZER, NOT_RECORDED),
        "code commit": t.get(T.CODE_COMMIT, NOT_RECORDED),
        "config": f"{t.get(T.CONFIG, NOT_RECORDED)} (digest {t.get(T.CONFIG_DIGEST, '-')})",
        "objective": t.get(T.OBJECTIVE, NOT_RECORDED),
        "parent model": t.get(T.PARENT_MODEL, "none (trained from scratch)"),
        "LoRA": t.get(T.LORA, "no (every weight trained)"),
        "eval set": t.get(T.EVAL_SET, NOT_RECORDED),
        "evidence digest": t.get(T.EVIDENCE_DIGEST, NOT_RECORDED),
        "staging gate": t.get(T.gate("staging"), NOT_RECORDED),
        "production gate": t.get(T.gate("production"), NOT_RECORDED),
    }
    manifest = datasets_root / ds / "manifest.json" if ds else None
    if manifest is not None and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        std = m.get("standard", {})
        named = (std.get("name"), std.get("version") or m.get("standard_version"))
        chain["standard"] = " ".join(x for x in named if x) or NOT_RECORDED
        chain["standard digest"] = std.get("digest") or t.get(T.STANDARD_DIGEST, NOT_RECORDED)
        chain["profile"] = std.get("profile") or t.get(T.DATA_PROFILE, NOT_RECORDED)
        chain["profile overrides"] = std.get("overrides", NOT_RECORDED) or "none"
        chain["sources"] = [f"{s['path']} sha256:{s['sha256'][:16]}" for s in m["sources"]]
    elif ds:
        # The version's tags keep the standard when the manifest is not in this home.
        chain["standard"] = t.get(T.DATA_STANDARD, NOT_RECORDED)
        chain["standard digest"] = t.get(T.STANDARD_DIGEST, NOT_RECORDED)
        chain["profile"] = t.get(T.DATA_PROFILE, NOT_RECORDED)
        chain["sources"] = f"manifest of {ds} is not in {datasets_root}"
    return chain
