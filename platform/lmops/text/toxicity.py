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
import zipfile
from collections.abc import Sequence
from itertools import repeat
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
    """The English model's ``predict_prob``: the package's, without sklearn where it can.

    :func:`_cached_model` scores with numpy and scipy from arrays kept in the lmops
    cache; where the wheel's model is not the shape it reproduces, the package's own
    vectorizer and model score, without its ``np.apply_along_axis`` over rows.
    """
    global _predict_prob
    if _predict_prob is None:
        with _lock:
            if _predict_prob is None:
                _predict_prob = _cached_model() or _sklearn_predict_prob()
    return _predict_prob


def _profanity_package():
    """``profanity_check.profanity_check``: importing it unpickles its model (~1.5 s)."""
    import warnings

    with warnings.catch_warnings():
        # The pickled sklearn model may predate the installed sklearn.
        warnings.simplefilter("ignore")
        from profanity_check import profanity_check
    return profanity_check


def _sklearn_predict_prob():
    package = _profanity_package()
    vectorizer, model = package.vectorizer, package.model

    def predict_prob(texts):
        return model.predict_proba(vectorizer.transform(texts))[:, 1]

    return predict_prob


# ---------------------------------------------------------------- the model without sklearn
#
# Written here because importing sklearn (which unpickling the wheel's model needs)
# costs 1.2 s in every process that scores, ingest workers included, and the model is
# a TF-IDF vectorizer under five sigmoid-calibrated linear SVMs: a sparse matrix
# product and a logistic function. The arrays are taken from the wheel's own pickles
# once per machine and kept in :func:`lmops.home.cache_dir`; the scores equal sklearn's
# within 1e-12 (tests/text/test_toxicity.py compares them).

# The only TfidfVectorizer settings reproduced here (those the wheel ships).
_PLAIN_TFIDF = {
    "analyzer": "word",
    "binary": False,
    "lowercase": True,
    "ngram_range": (1, 1),
    "norm": "l2",
    "preprocessor": None,
    "strip_accents": None,
    "sublinear_tf": False,
    "token_pattern": r"(?u)\b\w\w+\b",
    "tokenizer": None,
    "use_idf": True,
}
_SEPARATOR = "SEP"  # upper case: no lower-cased chunk holds it as a token
_CACHE_FORMAT = 1
_ARRAYS = {"words", "idf", "coef", "intercept", "a", "b"}


def _model_arrays(package) -> dict | None:
    """The wheel's vectorizer and model as arrays, or None if they are not the plain kind."""
    import numpy as np

    vectorizer, model = package.vectorizer, package.model
    params = vectorizer.get_params()
    vocab = getattr(vectorizer, "vocabulary_", None)
    if (
        any(params.get(k) != v for k, v in _PLAIN_TFIDF.items())
        or not vocab
        or _SEPARATOR in vocab
        or any(word in vocab for word in vectorizer.get_stop_words() or ())
        or type(model).__name__ != "CalibratedClassifierCV"
        or getattr(model, "method", None) != "sigmoid"
        or list(getattr(model, "classes_", ())) != [0, 1]
    ):
        return None
    width = len(vocab)
    coef, intercept, a, b = [], [], [], []
    for clf in model.calibrated_classifiers_:
        svm, calibrators = clf.estimator, clf.calibrators
        if (
            type(svm).__name__ != "LinearSVC"
            or svm.coef_.shape != (1, width)
            or len(calibrators) != 1
            or type(calibrators[0]).__name__ != "_SigmoidCalibration"
        ):
            return None
        coef.append(svm.coef_[0])
        intercept.append(svm.intercept_[0])
        a.append(calibrators[0].a_)
        b.append(calibrators[0].b_)
    words = [""] * width
    for word, col in vocab.items():
        words[col] = word
    return {
        "words": np.array(words, dtype=str),
        "idf": vectorizer.idf_.astype(np.float64),
        "coef": np.array(coef, dtype=np.float64).T,  # (vocabulary, classifiers)
        "intercept": np.array(intercept, dtype=np.float64),
        "a": np.array(a, dtype=np.float64),
        "b": np.array(b, dtype=np.float64),
    }


def _cached_model():
    """``predict_prob`` from the cached arrays (made first if missing), or None."""
    from importlib.metadata import version

    import numpy as np

    from lmops.home import cache_dir, replacing

    path = cache_dir() / f"profanity-check-{version('alt-profanity-check')}-{_CACHE_FORMAT}.npz"
    arrays = None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # none yet, or damaged
        pass
    if arrays is None or set(arrays) != _ARRAYS:  # made (again) from the wheel's pickles
        arrays = _model_arrays(_profanity_package())
        if arrays is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        except OSError:  # an unwritable cache costs only time
            pass
    return _linear_model(arrays)


def _linear_model(arrays: dict):
    """``predict_prob`` over the arrays of :func:`_model_arrays`."""
    import numpy as np

    transform = _tfidf_rows(arrays["words"].tolist(), arrays["idf"])
    coef, intercept, a, b = arrays["coef"], arrays["intercept"], arrays["a"], arrays["b"]

    def predict_prob(texts):
        # LinearSVC.decision_function, then each _SigmoidCalibration (expit(-(a d + b))),
        # then CalibratedClassifierCV's mean over its classifiers, summed in its order.
        decision = transform(texts) @ coef + intercept
        proba = 1.0 / (1.0 + np.exp(a * decision + b))
        total = proba[:, 0].copy()
        for k in range(1, proba.shape[1]):
            total += proba[:, k]
        return total / proba.shape[1]

    return predict_prob


def _tfidf_rows(words: list[str], idf):
    """The plain vectorizer's ``transform`` for vocabulary ``words`` (by column) and ``idf``.

    sklearn's ``transform`` runs its token regex once per chunk and counts tokens in a
    Python loop: on 0.5 M distinct lines of documentation that was 3.6 s, this is 2.0 s.
    It lower-cases the chunks, joins them around a separator token, finds every token
    with one regex pass, maps tokens to columns with one C-level ``map(dict.get)`` and
    builds the CSR matrix with scipy, then scales rows to unit length as sklearn's
    ``normalize`` does. ``\\w\\w+`` finds the same maximal runs as the vectorizer's
    ``\\b\\w\\w+\\b``. Stop words need no filter: the vocabulary holds none
    (:func:`_model_arrays` checks).
    """
    import numpy as np
    import scipy.sparse as sp

    token_re = re.compile(r"\w\w+")
    columns = {word: col for col, word in enumerate(words)}
    columns[_SEPARATOR] = -2
    width = len(words)

    def transform(texts):
        joined = f" {_SEPARATOR} ".join(map(str.lower, texts))
        tokens = token_re.findall(joined)
        cols = np.fromiter(map(columns.get, tokens, repeat(-1)), np.int64, len(tokens))
        rows = np.cumsum(cols == -2)  # a token's row: the separators before it
        known = cols >= 0  # unknown tokens and the separators drop out
        rows, cols = rows[known], cols[known]
        # Duplicate (row, col) entries are summed into counts, times the column's idf.
        x = sp.csr_matrix((idf[cols], (rows, cols)), shape=(len(texts), width))
        x.sort_indices()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0  # an empty row stays empty, as in sklearn
        x.data /= np.repeat(norms, np.diff(x.indptr))
        return x

    return transform


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
