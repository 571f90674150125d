"""Per-document signals and the keep/drop reason: the CPU-heavy stage of ingest.

``annotate_table`` is pure and picklable, so the same function runs in a local
process pool or in Ray Data's ``map_batches`` on a cluster. It computes every
signal first (Dolma's attribute model) and only then decides, so each document
carries its metrics (GX validates them) and at most one reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lmops.data import standard as std_mod
from lmops.data.langid import detect_languages
from lmops.data.near_dedup import NearDedupIndex
from lmops.data.quality import quality_decision, quality_signals
from lmops.data.rules import Standard
from lmops.data.schema import CANDIDATE_SCHEMA
from lmops.text.pii import KINDS as PII_KINDS
from lmops.text.pii import redact
from lmops.text.toxicity import toxicity_scores

# Signals kept as columns (the rest of quality_signals is recomputable and large).
KEPT_SIGNALS = (
    "n_words",
    "mean_word_length",
    "dup_line_ratio",
    "alpha_words_ratio",
    "terminal_punct_lines_ratio",
)

# Stage 2 output: the candidate columns plus every signal and the reason.
ANNOTATED_SCHEMA = pa.schema(
    [
        *CANDIDATE_SCHEMA,
        ("doc_hash", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
        ("n_chars", pa.int64()),
        *[(k, pa.float64()) for k in KEPT_SIGNALS],
        ("toxicity", pa.float64()),
        ("pii_hits", pa.int64()),
        *[(f"pii_{k}", pa.int64()) for k in PII_KINDS],
        ("reason", pa.string()),
        ("minhash", pa.binary()),
    ]
)

_INDEX = None


def _minhasher() -> NearDedupIndex:
    global _INDEX
    if _INDEX is None:
        _INDEX = NearDedupIndex()
    return _INDEX


def _first_reason(
    std: Standard, text: str, lang: str, score: float, tox: float, pii_hits: int
) -> tuple[str | None, dict]:
    if lang not in std.allowed_langs:
        return f"lang:not_allowed:{lang}", {}
    if score < std.min_lang_score:
        return f"lang:low_score:{score:.2f}", {}
    sig = {}
    if std.quality_enabled:
        sig = quality_signals(text, lang)
        ok, why = quality_decision(sig, lang, std.thresholds_for(lang))
        if not ok:
            return f"quality:{why}", sig
    if tox >= std.toxicity_threshold:
        return f"toxicity:score:{tox:.2f}", sig
    if pii_hits > std.max_pii_hits:
        return f"pii:too_many:{pii_hits}", sig
    return None, sig


def annotate_rows(rows: list[dict], std: Standard) -> list[dict]:
    """Normalise, identify language, score, redact, sign and decide for each row."""
    texts = [std_mod.normalise(r["text"]) for r in rows]
    # Length first: a 50 MB document must not reach the per-token scorers.
    length_reasons = [std_mod.check_length(t, std.min_chars, std.max_chars) for t in texts]
    scored = [i for i, why in enumerate(length_reasons) if why is None]
    langs: list[tuple[str, float]] = [("und", 0.0)] * len(rows)
    tox = [0.0] * len(rows)
    found = detect_languages([texts[i] for i in scored], parallel=False)
    scores = toxicity_scores([texts[i] for i in scored], [lang for lang, _ in found])
    for i, lang_score, t in zip(scored, found, scores, strict=True):
        langs[i], tox[i] = lang_score, t
    out = []
    hasher = _minhasher()
    no_pii = dict.fromkeys(PII_KINDS, 0)
    for r, text, (lang, score), t, why in zip(rows, texts, langs, tox, length_reasons, strict=True):
        if why:
            redacted, counts, reason, sig = text[:1000], no_pii, why, {}
        else:
            redacted, counts = redact(text) if std.redact_pii else (text, no_pii)
            reason, sig = _first_reason(std, text, lang, score, t, sum(counts.values()))
        hits = sum(counts.values())
        mh = b""
        if reason is None and std.near_dedup:
            mh = hasher.minhash(text, lang).hashvalues.astype(np.uint32).tobytes()
        out.append(
            {
                **{k: r[k] for k in ("id", "source", "license", "meta", "file", "line", "record")},
                "text": redacted,
                "doc_hash": std_mod.doc_hash(text),
                "lang": lang,
                "lang_score": float(score),
                "n_chars": len(text),
                **{k: float(sig.get(k, 0.0)) for k in KEPT_SIGNALS},
                "toxicity": float(t),
                "pii_hits": hits,
                **{f"pii_{k}": v for k, v in counts.items()},
                "reason": reason,
                "minhash": mh,
            }
        )
    return out


def annotate_table(table: pa.Table, std: Standard) -> pa.Table:
    """``annotate_rows`` over an Arrow table (the unit Ray Data and the pool exchange)."""
    return pa.Table.from_pylist(annotate_rows(table.to_pylist(), std), schema=ANNOTATED_SCHEMA)
