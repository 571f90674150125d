"""Licences of a dataset version, counted from its records, and the model card's licence.

A model card's ``license`` must come from the data the model was trained on, not a
default. Every v1 record carries a ``license`` field (kept as a column of the
accepted Parquet shards), so the card's value is derived from those counts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

UNKNOWN = "unknown"

# Hugging Face card ``license`` ids for common SPDX licences (lowercase). A licence
# outside this list (PSF-2.0, for one) has no HF id and becomes "other".
HF_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "cc0-1.0",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nd-4.0",
        "gpl-2.0",
        "gpl-3.0",
        "lgpl-3.0",
        "agpl-3.0",
        "mpl-2.0",
        "odc-by",
        "odbl",
        "pddl",
        "unlicense",
    }
)

# SPDX spellings whose HF id differs from the lowercased SPDX id.
_SPDX_ALIASES = {
    "gpl-2.0-only": "gpl-2.0",
    "gpl-3.0-only": "gpl-3.0",
    "lgpl-3.0-only": "lgpl-3.0",
    "agpl-3.0-only": "agpl-3.0",
    "odc-by-1.0": "odc-by",
    "odbl-1.0": "odbl",
    "pddl-1.0": "pddl",
}


def license_counts(version_path: Path) -> dict[str, int]:
    """Documents per record licence in a published version, most common first.

    Reads only the ``license`` column of the accepted shards the manifest lists; an
    empty or missing licence counts as ``unknown``.
    """
    import pyarrow.compute as pc

    from lmops.data.catalog import load_manifest
    from lmops.data.store import read_parquet

    counts: Counter[str] = Counter()
    for shard in load_manifest(version_path)["shards"]:
        column = read_parquet(version_path / shard, columns=["license"]).column(0)
        for item in pc.value_counts(column).to_pylist():
            counts[(item["values"] or "").strip() or UNKNOWN] += item["counts"]
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def hf_id(license_name: str) -> str | None:
    """The HF card id of one record licence, or None when HF has no id for it."""
    key = license_name.strip().lower()
    key = _SPDX_ALIASES.get(key, key)
    return key if key in HF_LICENSES else None


def card_license(counts: dict[str, int]) -> str:
    """The card's ``license``: the HF id of a single known licence, else other/unknown.

    Several licences (or one HF does not know) give ``other``; the card body must then
    state the breakdown (``license_note``). Only unknown licences give ``unknown``.
    """
    keys = set(_grouped(counts))
    if not keys or keys == {UNKNOWN}:
        return UNKNOWN
    if len(keys) == 1:
        return hf_id(next(iter(keys))) or "other"
    return "other"


def license_note(counts: dict[str, int]) -> str:
    """One sentence on what the card's licence value means for these counts."""
    groups = _grouped(counts)
    total = sum(n for _, n in groups.values())
    unknown = groups.pop(UNKNOWN, ("", 0))[1]
    known = sorted(name for name, _ in groups.values())
    value = card_license(counts)
    if total == 0:
        return "The dataset has no accepted documents, so no licence can be derived."
    if not known:
        return f"None of the {total} documents states a licence; the terms of use are unknown."
    if len(known) == 1 and not unknown:
        why = f" ({known[0]} has no Hugging Face licence id)" if value == "other" else ""
        return f"All {total} documents are licensed {known[0]}, so the card says `{value}`{why}."
    note = (
        f"The {total} documents carry {len(known)} licence{'s' if len(known) > 1 else ''} "
        f"({', '.join(known)}), so the card says `other`; use of the model must respect each."
    )
    if unknown:
        note += f" {unknown} of them state{'s' if unknown == 1 else ''} no licence."
    return note


def _grouped(counts: dict[str, int]) -> dict[str, tuple[str, int]]:
    """Counts per licence key (spellings differing in case or SPDX alias are one licence).

    Each key keeps its most common spelling for display.
    """
    out: dict[str, tuple[str, int]] = {}
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n <= 0:
            continue
        key = name.strip().lower() or UNKNOWN
        key = _SPDX_ALIASES.get(key, key)
        shown, total = out.get(key, (name.strip() or UNKNOWN, 0))
        out[key] = (shown, total + n)
    return out
