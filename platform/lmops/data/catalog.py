"""Inspect published dataset versions: list, show, diff (``lmops data ...``)."""

from __future__ import annotations

from pathlib import Path

from lmops.data.ingest import load_manifest
from lmops.errors import LmopsError


def list_versions(root: Path) -> list[dict]:
    """Manifests of every published version, oldest first."""
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
