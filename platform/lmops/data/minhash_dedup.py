"""Near-duplicate detection by sorting band keys: memory grows by bytes, not objects, per doc.

An in-memory LSH (datasketch's ``MinHashLSH``) keeps a Python set per band per
document, about 5 KB each, so a 500 MB corpus needed 2 GB of RAM. Here, as in
datatrove's bucket stage, each band's keys are one ``uint64`` array: sort it, and
documents that share a key are candidates. Signatures stay in a memory-mapped
file. A candidate counts only when the estimated Jaccard similarity against an
earlier *kept* document reaches ``min_jaccard``, which reproduces the streaming
rule "keep the first of each cluster".
"""

from __future__ import annotations

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)
MAX_RUN_PAIRS = 16  # earlier members compared per document within one band bucket


def band_keys(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One uint64 key per signature for ``band`` (its ``rows`` hash values combined)."""
    block = np.asarray(sigs[:, band * rows : (band + 1) * rows], dtype=np.uint64)
    key = np.zeros(len(block), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(rows):
            key = (key ^ block[:, c]) * _MIX + np.uint64(c + 1)
    return key


def candidate_pairs(sigs: np.ndarray, active: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(later, earlier) index pairs sharing a band key, among ``active`` rows; deduplicated."""
    idx = np.flatnonzero(active)
    out = []
    for b in range(bands):
        keys = band_keys(sigs, b, rows)[idx]
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        same = np.flatnonzero(k[1:] == k[:-1]) + 1  # positions equal to their predecessor
        if not len(same):
            continue
        # For each position in a run, pair it with up to MAX_RUN_PAIRS earlier run members.
        for back in range(1, MAX_RUN_PAIRS + 1):
            pos = same[same - back >= 0]
            pos = pos[k[pos] == k[pos - back]]
            if not len(pos):
                break
            a, e = idx[order[pos]], idx[order[pos - back]]
            later, earlier = np.maximum(a, e), np.minimum(a, e)
            out.append(np.stack([later, earlier], axis=1))
    if not out:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(out), axis=0)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def resolve(
    sigs: np.ndarray,
    active: np.ndarray,
    n_prev: int,
    same_doc: np.ndarray,
    bands: int,
    rows: int,
    min_jaccard: float,
) -> np.ndarray:
    """For each row, the index of the kept earlier row it nearly duplicates, or -1.

    Rows ``< n_prev`` are earlier versions' documents (always kept). ``same_doc`` maps
    each row to a content key; a candidate with the same content key is the same
    document seen in an earlier version, which a snapshot keeps, not a near copy.
    """
    dup_of = np.full(len(sigs), -1, dtype=np.int64)
    pairs = candidate_pairs(sigs, active, bands, rows)
    num_perm = bands * rows
    for later, earlier in pairs:  # sorted by `later`: earlier decisions are final
        if later < n_prev or dup_of[later] >= 0 or dup_of[earlier] >= 0:
            continue
        if same_doc[later] == same_doc[earlier]:
            continue
        j = np.count_nonzero(sigs[later] == sigs[earlier]) / num_perm
        if j >= min_jaccard:
            dup_of[later] = earlier
    return dup_of
