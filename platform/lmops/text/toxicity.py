"""Offline, CPU-cheap toxicity score in [0, 1] per document.

* English (and every language except Chinese): ``alt-profanity-check``, a calibrated
  linear SVM over TF-IDF features whose model ships inside the wheel (no download).
  It was trained on short comments, so a whole web page would dilute one abusive
  sentence into nothing; the document is cut into lines (and long lines into
  sentences), the distinct chunks of all documents are scored in ONE model call, and
  a document's score is the maximum over its chunks. The model only knows English
  words, so for other non-Chinese languages it only catches English profanity.
* Chinese (``zh``/``cmn``): hits of the wordlist ``zh_badwords.txt`` (non-overlapping,
  longest first, case-insensitive) per 100 visible characters,
  ``score = min(1, hits_per_100_chars / ZH_HITS_PER_100_CHARS_AT_MAX)``: with the
  default 2.0, one hit in a 50-character comment scores 1.0, one hit in a
  1,000-character article 0.05 and ~16 hits per 1,000 characters reach the 0.8
  threshold. Density, not presence, because a single swear word quoted in a long news
  article is not what the filter is for.

:data:`TOXICITY_THRESHOLD` is the default drop threshold (score > threshold = toxic).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "TOXICITY_THRESHOLD",
    "ZH_HITS_PER_100_CHARS_AT_MAX",
    "toxicity_score",
    "toxicity_scores",
    "zh_badword_hits",
]

TOXICITY_THRESHOLD = 0.8
ZH_HITS_PER_100_CHARS_AT_MAX = 2.0
# Lines longer than this are split into sentences before scoring (see module docstring).
_MAX_CHUNK_CHARS = 400

_WORDLIST_PATH = Path(__file__).with_name("zh_badwords.txt")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?;])\s+")
_LETTER_RE = re.compile(r"[^\W\d_]")

_lock = threading.Lock()
_predict_prob = None
_zh_re: re.Pattern[str] | None = None


def _is_zh(lang: str) -> bool:
    return (lang or "").lower().replace("_", "-").split("-", 1)[0] in ("zh", "cmn")


def _profanity_predict_prob():
    """Import alt-profanity-check on first use: it unpickles its model (~1.5 s).

    The returned function is the package's ``predict_prob`` without its
    ``np.apply_along_axis`` over rows (a Python call per chunk, over 10% of the call):
    the same vectorizer and model, and column 1 of ``predict_proba`` is the value
    ``predict_prob`` takes from each row.
    """
    global _predict_prob
    if _predict_prob is None:
        with _lock:
            if _predict_prob is None:
                import warnings

                with warnings.catch_warnings():
                    # The pickled sklearn model may predate the installed sklearn.
                    warnings.simplefilter("ignore")
                    from profanity_check import profanity_check

                vectorizer, model = profanity_check.vectorizer, profanity_check.model

                def predict_prob(texts):
                    return model.predict_proba(vectorizer.transform(texts))[:, 1]

                _predict_prob = predict_prob
    return _predict_prob


def _zh_pattern() -> re.Pattern[str]:
    global _zh_re
    if _zh_re is None:
        with _lock:
            if _zh_re is None:
                words = {
                    line.strip()
                    for line in _WORDLIST_PATH.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                }
                # Longest first so that 妈了个逼 is one hit, not a hit on a shorter entry.
                ordered = sorted(words, key=lambda w: (-len(w), w))
                _zh_re = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)
    return _zh_re


def zh_badword_hits(text: str) -> int:
    """Number of non-overlapping wordlist hits in ``text``."""
    return sum(1 for _ in _zh_pattern().finditer(text))


def _zh_score(text: str) -> float:
    visible = sum(map(len, text.split()))
    if not visible:
        return 0.0
    per_100 = 100.0 * zh_badword_hits(text) / visible
    return min(1.0, per_100 / ZH_HITS_PER_100_CHARS_AT_MAX)


def _chunks(text: str) -> list[str]:
    """Lines, long lines cut into sentences; chunks without a letter are skipped."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        parts = _SENTENCE_SPLIT_RE.split(line) if len(line) > _MAX_CHUNK_CHARS else (line,)
        out.extend(p for p in parts if _LETTER_RE.search(p))
    return out


def toxicity_scores(texts: Sequence[str], langs: Sequence[str] | str) -> list[float]:
    """Scores for many documents; ``langs`` is one code per text or one for all.

    Non-Chinese documents share a single model call, which is what makes this cheap.
    A chunk that occurs more than once (a footer, a repeated line) is scored once: the
    model scores each chunk on its own, so its score does not depend on the others.
    """
    if isinstance(langs, str):
        langs = [langs] * len(texts)
    if len(langs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(langs)} language codes")
    scores = [0.0] * len(texts)
    chunks: list[str] = []
    owners: list[int] = []
    for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        if _is_zh(lang):
            scores[i] = _zh_score(text)
        else:
            doc_chunks = _chunks(text)
            chunks.extend(doc_chunks)
            owners.extend([i] * len(doc_chunks))
    if chunks:
        index: dict[str, int] = {}
        slots = [index.setdefault(chunk, len(index)) for chunk in chunks]
        probs = _profanity_predict_prob()(list(index)).tolist()
        for owner, slot in zip(owners, slots, strict=True):
            prob = probs[slot]
            if prob > scores[owner]:
                scores[owner] = prob
    return scores


def toxicity_score(text: str, lang: str) -> float:
    """Toxicity of one document in [0, 1]; see the module docstring for the method."""
    return toxicity_scores([text], [lang])[0]
