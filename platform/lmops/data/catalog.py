"""Read published dataset versions: manifests and texts for training, SFT, tokenization and
evaluation, and list/show/diff for ``lmops data ...``. Nothing here imports the ingest
orchestrator, so readers of a dataset never depend on how it was written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from lmops.errors import LmopsError


def load_manifest(version_path: Path) -> dict:
    """The manifest.json of one published version."""
    return json.loads((version_path / "manifest.json").read_text(encoding="utf-8"))


def iter_texts(version_path: Path, split: Callable[[str], bool] | None = None):
    """Yield (doc_hash, text) of a published version, optionally filtered by hash."""
    from lmops.data.store import open_parquet

    manifest = load_manifest(version_path)
    for shard in manifest["shards"]:
        pf = open_parquet(version_path / shard)
        for batch in pf.iter_batches(columns=["doc_hash", "text"], batch_size=1024):
            for h, t in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                if split is None or split(h):
                    yield h, t


def list_versions(root: Path) -> list[dict]:
    """Manifests of every published version, oldest first."""
    from lmops.data.store import check_root

    check_root(root)
    out = [load_manifest(p) for p in root.glob("ds-*") if (p / "manifest.json").exists()]
    return sorted(out, key=lambda m: m.get("created", ""))


def find_version(root: Path, ref: str) -> dict:
    """A version by id or unique id prefix (``ds-1a2b`` or ``1a2b``), or ``latest``."""
    versions = list_versions(root)
    if not versions:
        raise LmopsError(f"no dataset version is published in {root}; run `lmops ingest` first")
    if ref == "latest":
        return versions[-1]
    ref = ref if ref.startswith("ds-") else f"ds-{ref}"
    hits = [m for m in versions if m["version_id"].startswith(ref)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LmopsError(f"no dataset version matches '{ref}'; see `lmops data list`")
    raise LmopsError(f"'{ref}' matches {len(hits)} versions; give more characters")


def diff_versions(a: dict, b: dict) -> dict:
    """Counts, reasons, languages and sources that differ between two manifests."""
    ca, cb = a["counts"], b["counts"]
    keys = ("input", "accepted", "quarantined", "accepted_bytes")
    reasons = sorted(set(ca["reasons"]) | set(cb["reasons"]))
    langs = sorted(set(ca["langs"]) | set(cb["langs"]))
    sa = {s["sha256"]: s["path"] for s in a["sources"]}
    sb = {s["sha256"]: s["path"] for s in b["sources"]}
    return {
        "counts": {k: (ca.get(k, 0), cb.get(k, 0)) for k in keys},
        "reasons": {
            r: (ca["reasons"].get(r, 0), cb["reasons"].get(r, 0))
            for r in reasons
            if ca["reasons"].get(r, 0) != cb["reasons"].get(r, 0)
        },
        "langs": {k: (ca["langs"].get(k, 0), cb["langs"].get(k, 0)) for k in langs},
        "sources_only_in_a": sorted(sa[h] for h in set(sa) - set(sb)),
        "sources_only_in_b": sorted(sb[h] for h in set(sb) - set(sa)),
        "standard": (a["standard_version"], b["standard_version"]),
    }
