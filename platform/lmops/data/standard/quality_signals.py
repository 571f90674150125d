"""Per-document quality signals: a pure measurement of one document.

As in datatrove/Dolma, measuring is kept apart from deciding
(:mod:`lmops.data.standard.quality_rules`), so the pipeline can store the signals next
to the data (thresholds can then be re-tuned without re-reading the corpus) and report
*why* a document was dropped. Gopher and ChineseWebText signals measure the text;
FineWeb's measure the text C4's line rules (:mod:`lmops.data.standard.c4`) left, as in
datatrove's FineWeb pipeline. Words are whitespace tokens, except in the ``zh`` family
(see :func:`~lmops.data.standard.quality_thresholds.lang_family`), where they are jieba
words and n-grams are of jieba words.
"""

from __future__ import annotations

import re
import string
from itertools import accumulate

import numpy as np
import rjieba

from lmops.data.standard.c4 import C4Lines, c4_lines
from lmops.data.standard.loader import thresholds_for
from lmops.data.standard.quality_thresholds import (
    DUP_NGRAM_SIZES,
    TOP_NGRAM_SIZES,
    QualityThresholds,
    lang_family,
)

__all__ = ["LazySignals", "lazy_quality_signals", "quality_signals"]

# Characters stripped from both ends of a word before its length is measured and before
# it is compared with the stop words; a word that is nothing but these is a "symbol".
_STRIP_CHARS = string.punctuation + "“”‘’«»…—–‐‑·•、，。！？；：（）【】《》「」『』〈〉〔〕￥・"
_BULLETS = ("•", "-", "*", "‣", "◦", "●", "▪", "·", "–")
_ELLIPSES = ("...", "…")
# A line "ends in terminal punctuation" if, after dropping closing quotes/brackets,
# it ends in one of these (ASCII and CJK sentence enders, so `他说：“好。”` counts).
_CLOSERS = "\"'”’」』）)]】》"
_TERMINALS = (".", "!", "?", "…", "。", "！", "？")

_PARA_SPLIT_RE = re.compile(r"\n[^\S\n]*\n\s*")
# A whitespace-delimited token made only of digits, underscores and non-word symbols,
# i.e. one without a single letter (Python's \w minus digits/underscore is letters).
_NO_LETTER_TOKEN_RE = re.compile(r"(?<!\S)(?:[^\w\s]|[\d_])+(?!\S)")
# The same tokens after their whitespace: starting with a character class lets the
# regex engine skip to the next whitespace instead of trying every position (~1.5x).
_NO_LETTER_AFTER_SPACE_RE = re.compile(r"\s(?:[^\w\s]|[\d_])+(?!\S)")
_HAN_RE = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef\U00030000-\U0003134f]"
)


# --------------------------------------------------------------------------- jieba


def _zh_words(text: str) -> list[str]:
    """jieba words without whitespace tokens.

    ``rjieba`` is jieba-rs: the same dictionary and HMM segmentation as Python
    jieba (identical output on our tests) at ~20x the speed; segmentation was
    about half of the whole ingest's CPU time on Chinese text with Python jieba.
    """
    return [w for w in rjieba.cut(text) if not w.isspace()]


# --------------------------------------------------------------------------- helpers


def _dup_elements(items: list[str]) -> tuple[int, int]:
    """Number of repeated items and their total characters (first occurrence excluded)."""
    seen: set[str] = set()
    n_dup = dup_chars = 0
    for item in items:
        if item in seen:
            n_dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return n_dup, dup_chars


# n-grams are compared through 64-bit keys built from the words' (cached) str hashes:
# counting and grouping then run in numpy instead of over Python tuples, 2-4x faster.
# Two different n-grams would only merge on a 64-bit key collision (~len**2 / 2**64).
# Python salts str hashes per process, but only equality of keys is used, so the
# signals are still deterministic.
_KEY_MULT = np.uint64(0x9E3779B97F4A7C15)
_KEY_SHIFT = np.uint64(29)
_NO_POSITIONS = np.empty(0, dtype=np.int64)


def _ngram_keys(word_keys: np.ndarray, n: int, at: np.ndarray | None = None) -> np.ndarray:
    """Key of the n-gram at every position, or at the positions ``at`` (same values)."""
    if at is None:
        length = word_keys.size - n + 1
        keys = word_keys[:length].copy()
        for i in range(1, n):
            keys = keys * _KEY_MULT + word_keys[i : i + length]
            keys ^= keys >> _KEY_SHIFT
        return keys
    keys = word_keys[at]
    for i in range(1, n):
        keys = keys * _KEY_MULT + word_keys[at + i]
        keys ^= keys >> _KEY_SHIFT
    return keys


def _top_ngram_chars(word_keys: np.ndarray, prefix: list[int], n: int) -> int:
    """Characters of the most frequent n-gram (space-joined, as datatrove) x its count.

    Ties go to the n-gram that occurs first, like ``Counter.most_common``.
    """
    if word_keys.size < n:
        return 0
    _, first, counts = np.unique(_ngram_keys(word_keys, n), return_index=True, return_counts=True)
    top = counts.max()
    pos = int(first[counts == top].min())
    return (prefix[pos + n] - prefix[pos] + n - 1) * int(top)


def _repeated_ngrams(
    word_keys: np.ndarray, n: int, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ascending) whose n-gram occurs more than once, and those n-grams' keys.

    ``candidates`` (ascending) limits the search: an n-gram can only occur twice where
    its first n - 1 words do, so the positions of the repeated (n-1)-grams are the
    candidates for n, and the repeated n-grams found among them are all there are (as
    everywhere here, n-grams are compared by their 64-bit keys).
    """
    if word_keys.size < n:
        return _NO_POSITIONS, _NO_POSITIONS
    if candidates is None:
        at = None
    else:
        at = candidates[candidates <= word_keys.size - n]
        if at.size < 2:
            return _NO_POSITIONS, _NO_POSITIONS
    keys = _ngram_keys(word_keys, n, at)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    repeated = counts[inverse] > 1
    positions = np.flatnonzero(repeated) if at is None else at[repeated]
    return positions, keys[repeated]


def _dup_ngram_chars(positions: np.ndarray, keys: np.ndarray, prefix: list[int], n: int) -> int:
    """Characters covered by repeated n-grams, scanning left to right (Gopher/datatrove).

    A repeated n-gram counts its characters and the scan jumps past it, so overlapping
    repeats are not counted twice. Only positions whose n-gram occurs more than once
    (``positions``, with their ``keys``, from :func:`_repeated_ngrams`) can change the
    result, so the Python scan visits just those (exactly datatrove's result).
    """
    seen: set[int] = set()
    total = resume = 0
    for pos, key in zip(positions.tolist(), keys.tolist(), strict=True):
        if pos < resume:  # inside a repeat the scan jumped over
            continue
        if key in seen:
            total += prefix[pos + n] - prefix[pos]
            resume = pos + n
        else:
            seen.add(key)
    return total


def _count_no_letter_tokens(text: str) -> int:
    """Matches of ``_NO_LETTER_TOKEN_RE`` in ``text``: one at the start, or after a space."""
    first = _NO_LETTER_TOKEN_RE.match(text) is not None
    return first + sum(1 for _ in _NO_LETTER_AFTER_SPACE_RE.finditer(text))


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


# --------------------------------------------------------------------------- signals


def _tokens(text: str, family: str) -> list[str]:
    return _zh_words(text) if family == "zh" else text.split()


def _fineweb_signals(text: str, n_tokens: int, short_line_chars: int) -> dict[str, float]:
    """FineWeb's line signals of ``text`` (the text C4 left), keyed as the rules read them."""
    raw_lines = text.split("\n")
    lines = [s for s in (ln.strip() for ln in raw_lines) if s]
    n_lines = len(lines)
    n_newlines = len(raw_lines) - 1
    return {
        "fineweb_n_lines": float(n_lines),
        "terminal_punct_lines_ratio": _ratio(
            sum(s.rstrip(_CLOSERS).endswith(_TERMINALS) for s in lines), n_lines
        ),
        "short_lines_ratio": _ratio(sum(len(s) <= short_line_chars for s in lines), n_lines),
        "fineweb_dup_line_char_ratio": _ratio(_dup_elements(lines)[1], len(text) - n_newlines),
        "newline_per_word": _ratio(n_newlines, n_tokens),
    }


class LazySignals(dict):
    """The signals of one document; the costly ones are measured on first read.

    :func:`quality_decision` stops at the first failing rule, and most of a web corpus
    fails one of Gopher's quality rules. The signals of :data:`LAZY_SIGNALS` are only
    read by rules that come after those (paragraph and n-gram repetition) or that
    only some languages switch on (the CJK share), so ``__missing__`` computes each
    when a rule reads it, with the same code :func:`quality_signals` runs; ``get``
    and ``in`` do not compute them. :meth:`complete` computes every one.
    """

    def __init__(self, values: dict[str, float], text: str, tokens: list[str], n_visible: int):
        super().__init__(values)
        self._text = text
        self._tokens = tokens
        self._n_visible = n_visible
        self._ngram_input: tuple[np.ndarray, list[int]] | None = None
        # Positions of the repeated n-grams of the largest duplicate size measured so far.
        self._repeated: np.ndarray | None = None

    def _word_keys(self) -> tuple[np.ndarray, list[int]]:
        if self._ngram_input is None:
            tokens = self._tokens
            prefix = [0, *accumulate(map(len, tokens))]
            keys = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens))
            self._ngram_input = keys.view(np.uint64), prefix
        return self._ngram_input

    def __missing__(self, key: str) -> float:
        if key not in LAZY_SIGNALS:
            raise KeyError(key)
        text, n_chars_total = self._text, len(self._text)
        if key == "cjk_ratio":
            self[key] = _ratio(len(_HAN_RE.findall(text)), self._n_visible)
        elif key in ("dup_para_ratio", "dup_para_char_ratio"):
            paras = [s for s in (p.strip() for p in _PARA_SPLIT_RE.split(text.strip())) if s]
            dup_paras, dup_para_chars = _dup_elements(paras)
            self["dup_para_ratio"] = _ratio(dup_paras, len(paras))
            self["dup_para_char_ratio"] = _ratio(dup_para_chars, n_chars_total)
        elif key.startswith("top_"):
            n = int(key[4:-4])
            word_keys, prefix = self._word_keys()
            self[key] = _ratio(_top_ngram_chars(word_keys, prefix, n), n_chars_total)
        else:  # dup_<n>gram: the sizes below n first, whose repeats are n's candidates
            word_keys, prefix = self._word_keys()
            for n in DUP_NGRAM_SIZES[: DUP_NGRAM_SIZES.index(int(key[4:-4])) + 1]:
                if f"dup_{n}gram" in self:
                    continue
                # No repeated n-gram means no repeated longer n-gram either: skip the scan.
                prev = self.get(f"dup_{n - 1}gram")
                chars = 0
                if prev != 0.0:
                    positions, keys = _repeated_ngrams(word_keys, n, self._repeated)
                    self._repeated = positions
                    chars = _dup_ngram_chars(positions, keys, prefix, n)
                self[f"dup_{n}gram"] = _ratio(chars, n_chars_total)
        return dict.__getitem__(self, key)

    def complete(self) -> dict[str, float]:
        """Every signal, lazy ones included, as a plain dict in the documented key order."""
        for key in LAZY_SIGNALS:
            self[key]
        return {k: self[k] for k in SIGNAL_ORDER}


LAZY_SIGNALS = (
    "cjk_ratio",
    "dup_para_ratio",
    "dup_para_char_ratio",
    *(f"top_{n}gram" for n in TOP_NGRAM_SIZES),
    *(f"dup_{n}gram" for n in DUP_NGRAM_SIZES),
)
# The keys of quality_signals, in their order.
SIGNAL_ORDER = (
    "n_chars",
    "n_words",
    "n_tokens",
    "n_lines",
    "mean_word_length",
    "mean_line_length",
    "cjk_ratio",
    "hash_ratio",
    "ellipsis_ratio",
    "bullet_lines_ratio",
    "ellipsis_lines_ratio",
    "alpha_words_ratio",
    "stopword_count",
    "dup_para_ratio",
    "dup_para_char_ratio",
    "dup_line_ratio",
    "dup_line_char_ratio",
    "c4_lines_removed",
    "lorem_ipsum",
    "curly_bracket",
    "too_few_sentences",
    "fineweb_n_lines",
    "terminal_punct_lines_ratio",
    "short_lines_ratio",
    "fineweb_dup_line_char_ratio",
    "newline_per_word",
    *(f"top_{n}gram" for n in TOP_NGRAM_SIZES),
    *(f"dup_{n}gram" for n in DUP_NGRAM_SIZES),
)


def lazy_quality_signals(
    text: str,
    lang: str,
    thresholds: QualityThresholds | None = None,
    c4: C4Lines | None = None,
) -> LazySignals:
    """:func:`quality_signals` with the costly signals measured on first read.

    What the ingest passes to :func:`quality_decision`: the decision is the same,
    and only the signals the rules up to the deciding one read are computed.
    """
    th = thresholds if thresholds is not None else thresholds_for(lang)
    c4 = c4 if c4 is not None else c4_lines(text, th)
    stopwords = th.stopwords
    family = lang_family(lang)
    n_chars_total = len(text)

    tokens = _tokens(text, family)
    if family == "zh":
        n_visible = sum(map(len, text.split()))
        token_text = " ".join(tokens)
        stripped = [w.strip(_STRIP_CHARS) for w in tokens]
    else:
        # The tokens are text.split(): its visible characters are theirs.
        n_visible = sum(map(len, tokens))
        token_text = text
        stripped = [w.strip(_STRIP_CHARS) for w in text.lower().split()]
    words = [w for w in stripped if w]
    n_tokens = len(tokens)
    n_words = len(words)

    no_letter = _count_no_letter_tokens(token_text)
    stopword_count = sum(map(stopwords.__contains__, words))

    raw_lines = text.split("\n")
    lines = [s for s in (ln.strip() for ln in raw_lines) if s]
    n_lines = len(lines)
    line_chars = sum(map(len, lines))
    dup_lines, dup_line_chars = _dup_elements(lines)
    n_newlines = len(raw_lines) - 1

    signals: dict[str, float] = {
        "n_chars": float(n_visible),
        "n_words": float(n_words),
        "n_tokens": float(n_tokens),
        "n_lines": float(n_lines),
        "mean_word_length": _ratio(sum(map(len, words)), n_words),
        "mean_line_length": _ratio(line_chars, n_lines),
        "hash_ratio": _ratio(text.count("#"), n_tokens),
        "ellipsis_ratio": _ratio(text.count("...") + text.count("…"), n_tokens),
        "bullet_lines_ratio": _ratio(sum(s.startswith(_BULLETS) for s in lines), n_lines),
        "ellipsis_lines_ratio": _ratio(sum(s.endswith(_ELLIPSES) for s in lines), n_lines),
        "alpha_words_ratio": _ratio(n_tokens - no_letter, n_tokens),
        "stopword_count": float(stopword_count),
        "dup_line_ratio": _ratio(dup_lines, n_lines),
        # Over the characters that are not newlines, as FineWeb; Gopher divides by all
        # characters, a negligible difference.
        "dup_line_char_ratio": _ratio(dup_line_chars, n_chars_total - n_newlines),
        "c4_lines_removed": float(c4.lines_removed),
        "lorem_ipsum": float(c4.drop == "lorem_ipsum"),
        "curly_bracket": float(c4.drop == "curly_bracket"),
        "too_few_sentences": float(c4.drop == "too_few_sentences"),
    }
    cleaned_tokens = n_tokens if c4.text is text else len(_tokens(c4.text, family))
    signals.update(_fineweb_signals(c4.text, cleaned_tokens, th.short_line_chars))
    return LazySignals(signals, text, tokens, n_visible)


def quality_signals(
    text: str,
    lang: str,
    thresholds: QualityThresholds | None = None,
    c4: C4Lines | None = None,
) -> dict[str, float]:
    """Measure ``text``; pure, every value a float, same keys for every language.

    Words are whitespace tokens, except for Chinese where they are jieba words (jieba
    splits punctuation off, which is why the Chinese letter-share threshold is lower).
    ``n_words`` counts words that are not pure punctuation, ``n_tokens`` counts all;
    ``n_chars`` counts visible (non-whitespace) characters. Lines are the non-empty
    lines, stripped. Ratios over an empty denominator are 0. Cost: single core, a few
    MB/s for English; Chinese is bound by jieba (~0.4-0.7 MB/s, HMM on, as datatrove's
    spaCy-jieba tokenizer that the FineWeb-2 thresholds were fitted with).

    Gopher and ChineseWebText signals measure ``text``; FineWeb's measure the text C4's
    line rules left (``c4``: :func:`c4_lines` of ``text``, computed here when not given).
    """
    return lazy_quality_signals(text, lang, thresholds, c4).complete()
