"""Per-document signals and the keep/drop reason: the CPU-heavy stage of ingest.

``annotate_table`` is pure and picklable, so the same function runs in a local
process pool or in Ray Data's ``map_batches`` on a cluster. It computes every
signal first (Dolma's attribute model) and only then decides, so each document
carries its metrics (GX validates them) and at most one reason.

The quality rules run before toxicity and PII, because C4's line rules remove lines
(as in datatrove's FineWeb pipeline): toxicity, PII, the content hash, MinHash and the
stored text all see the lines that remain. Gopher's signals measure the whole text.
"""

from __future__ import annotations

import pyarrow as pa

from lmops.data.langid import detect_languages
from lmops.data.near_dedup import NearDedupIndex, shingle_hashes
from lmops.data.standard import Standard, records
from lmops.data.standard.c4 import c4_lines
from lmops.data.standard.quality_rules import quality_decision
from lmops.data.standard.quality_signals import lazy_quality_signals
from lmops.data.standard.schema import CANDIDATE_SCHEMA
from lmops.text.pii import KINDS as PII_KINDS
from lmops.text.pii import redact
from lmops.text.toxicity import toxicity_scores

# Signals kept as columns (the rest of quality_signals is recomputable and large;
# lazy_quality_signals computes the costly ones only when a rule reads them).
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
        # Lines with text that C4's line rules removed from ``text``.
        ("c4_lines_removed", pa.int64()),
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


def _quality(
    std: Standard, text: str, lang: str, score: float
) -> tuple[str | None, dict, str, int]:
    """(reason, signals, text to keep, C4 lines removed) from language and quality rules.

    The text to keep is what C4's line rules left of a document that passed them;
    otherwise the text as it came.
    """
    if lang not in std.allowed_langs:
        return f"lang:not_allowed:{lang}", {}, text, 0
    if score < std.min_lang_score:
        return f"lang:low_score:{score:.2f}", {}, text, 0
    if not std.quality_enabled:
        return None, {}, text, 0
    th = std.thresholds_for(lang)
    c4 = c4_lines(text, th)
    sig = lazy_quality_signals(text, lang, th, c4)
    ok, why = quality_decision(sig, lang, th)
    if not ok:
        return f"quality:{why}", sig, text, 0
    return None, sig, c4.text, c4.lines_removed


def annotate_rows(rows: list[dict], std: Standard) -> list[dict]:
    """Normalise, identify language, apply the quality rules, score, redact, sign, decide."""
    texts = [records.normalise(r["text"]) for r in rows]
    # Length first: a 50 MB document must not reach the per-token scorers.
    length_reasons = [records.check_length(t, std.min_chars, std.max_chars) for t in texts]
    scored = [i for i, why in enumerate(length_reasons) if why is None]
    langs: list[tuple[str, float]] = [("und", 0.0)] * len(rows)
    tox = [0.0] * len(rows)
    reasons = list(length_reasons)
    sigs: list[dict] = [{} for _ in rows]
    removed = [0] * len(rows)
    found = detect_languages([texts[i] for i in scored], parallel=False)
    for i, (lang, score) in zip(scored, found, strict=True):
        langs[i] = lang, score
        reasons[i], sigs[i], texts[i], removed[i] = _quality(std, texts[i], lang, score)
    scores = toxicity_scores([texts[i] for i in scored], [lang for lang, _ in found])
    for i, t in zip(scored, scores, strict=True):
        tox[i] = t
    out = []
    hasher = _minhasher()
    no_pii = dict.fromkeys(PII_KINDS, 0)
    for i, (r, text, (lang, score), t) in enumerate(zip(rows, texts, langs, tox, strict=True)):
        reason, sig = reasons[i], sigs[i]
        if length_reasons[i]:
            redacted, counts = text[:1000], no_pii
        else:
            redacted, counts = redact(text) if std.redact_pii else (text, no_pii)
            if reason is None and t >= std.toxicity_threshold:
                reason = f"toxicity:score:{t:.2f}"
            elif reason is None and sum(counts.values()) > std.max_pii_hits:
                reason = f"pii:too_many:{sum(counts.values())}"
        hits = sum(counts.values())
        mh = b""
        if reason is None and std.near_dedup:
            # The signature alone: a datasketch MinHash would import datasketch and scipy
            # in every worker (0.7 s), and decide only needs these bytes.
            mh = hasher.signature(shingle_hashes(text, lang, hasher.ngram)).tobytes()
        out.append(
            {
                **{k: r[k] for k in ("id", "source", "license", "meta", "file", "line", "record")},
                "text": redacted,
                "doc_hash": records.doc_hash(text),
                "lang": lang,
                "lang_score": float(score),
                "n_chars": len(text),
                **{k: float(sig.get(k, 0.0)) for k in KEPT_SIGNALS},
                "c4_lines_removed": removed[i],
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


_WARM_UP_TEXTS = (
    "The quick brown fox jumps over the lazy dog. It was a sunny day in the park.\n"
    "Contact us at help@example.com or call 415-555-2671 for details about the release.",
    "今天天气很好，我们去公园散步。这是一个关于数据质量的中文句子，用来测试分词和语言识别。",
)


def warm_up() -> None:
    """Load what annotate loads on its first documents: lingua's models, spaCy, jieba...

    The ``web`` profile is used because it runs every rule family; what is loaded does
    not depend on the profile's figures.
    """
    from lmops.data.standard import resolve

    keys = ("source", "license", "file", "record")
    rows = [
        {"id": str(i), "meta": "{}", "line": i, "text": t, **dict.fromkeys(keys, "")}
        for i, t in enumerate(_WARM_UP_TEXTS)
    ]
    annotate_rows(rows, resolve("v1", "web"))
