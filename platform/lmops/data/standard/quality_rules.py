"""The rule-based keep/drop decision over one document's quality signals.

:func:`quality_decision` compares the measurements of
:mod:`lmops.data.standard.quality_signals` with a
:class:`~lmops.data.standard.quality_thresholds.QualityThresholds` and names the first
rule that failed. Rule families, checked in this order (the first failing rule wins):

* ``empty``               - no visible characters at all (always on).
* ``chinesewebtext``      - ChineseWebText basics: length, mean line length, CJK share.
* ``gopher_quality``      - Gopher (Rae et al., 2021) document statistics.
* ``gopher_repetition``   - Gopher line/paragraph/n-gram repetition.
* ``c4``                  - C4 (:mod:`lmops.data.standard.c4`): its line rules remove
  lines; "lorem ipsum", "{" and too few sentences left drop the document.
* ``fineweb``             - FineWeb's extra rules (terminal punctuation, short lines,
  duplicated-line characters, newlines per word), measured on the text C4 left, as in
  datatrove's FineWeb pipeline. That text is the one the ingest stores.
"""

from __future__ import annotations

from functools import lru_cache

from lmops.data.standard.loader import thresholds_for
from lmops.data.standard.quality_thresholds import QualityThresholds

__all__ = ["quality_decision"]

# (family, signal, kind, threshold); kind "min": fail below, "max": fail above,
# "gt": fail unless strictly above, "flag": fail if the signal is non-zero,
# "min_multiline": "min" but only for documents with more than one line (in the text
# C4 left). The reason is "family:signal", less a "family_" prefix of the signal.
_Rule = tuple[str, str, str, float]


@lru_cache(maxsize=32)
def _rules(th: QualityThresholds) -> tuple[_Rule, ...]:
    spec: list[tuple[str, str, str, float | None]] = [
        ("chinesewebtext", "n_chars", "gt", th.min_chars),
        ("chinesewebtext", "mean_line_length", "min", th.min_mean_line_length),
        ("chinesewebtext", "cjk_ratio", "min", th.min_cjk_ratio),
        ("gopher_quality", "n_words", "min", th.min_words),
        ("gopher_quality", "n_words", "max", th.max_words),
        ("gopher_quality", "mean_word_length", "min", th.min_mean_word_length),
        ("gopher_quality", "mean_word_length", "max", th.max_mean_word_length),
        ("gopher_quality", "hash_ratio", "max", th.max_hash_ratio),
        ("gopher_quality", "ellipsis_ratio", "max", th.max_ellipsis_ratio),
        ("gopher_quality", "bullet_lines_ratio", "max", th.max_bullet_lines_ratio),
        ("gopher_quality", "ellipsis_lines_ratio", "max", th.max_ellipsis_lines_ratio),
        ("gopher_quality", "alpha_words_ratio", "min", th.min_alpha_words_ratio),
        ("gopher_quality", "stopword_count", "min", th.min_stopwords),
        ("gopher_repetition", "dup_para_ratio", "max", th.max_dup_para_ratio),
        ("gopher_repetition", "dup_para_char_ratio", "max", th.max_dup_para_char_ratio),
        ("gopher_repetition", "dup_line_ratio", "max", th.max_dup_line_ratio),
        ("gopher_repetition", "dup_line_char_ratio", "max", th.max_dup_line_char_ratio),
    ]
    spec += [("gopher_repetition", f"top_{n}gram", "max", v) for n, v in th.max_top_ngram_ratio]
    spec += [("gopher_repetition", f"dup_{n}gram", "max", v) for n, v in th.max_dup_ngram_ratio]
    spec += [
        ("c4", "lorem_ipsum", "flag", 0.0 if th.c4_lorem_ipsum else None),
        ("c4", "curly_bracket", "flag", 0.0 if th.c4_curly_bracket else None),
        ("c4", "too_few_sentences", "flag", None if th.c4_min_sentences is None else 0.0),
        (
            "fineweb",
            "terminal_punct_lines_ratio",
            "min_multiline",
            th.min_terminal_punct_lines_ratio,
        ),
        ("fineweb", "short_lines_ratio", "max_multiline", th.max_short_lines_ratio),
        ("fineweb", "fineweb_dup_line_char_ratio", "max", th.fineweb_max_dup_line_char_ratio),
        ("fineweb", "newline_per_word", "max", th.max_newline_per_word),
    ]
    return tuple((f, s, k, float(v)) for f, s, k, v in spec if v is not None)


def quality_decision(
    signals: dict[str, float], lang: str, thresholds: QualityThresholds | None = None
) -> tuple[bool, str | None]:
    """Keep (``(True, None)``) or drop with the first failing rule, ``"family:signal"``.

    ``thresholds`` defaults to :func:`thresholds_for(lang) <thresholds_for>`. The rule
    order is fixed (see the module docstring), so a reason is stable across runs.
    """
    th = thresholds if thresholds is not None else thresholds_for(lang)
    if signals["n_chars"] <= 0:
        return False, "empty:n_chars"
    multiline = signals["fineweb_n_lines"] > 1
    for family, name, kind, limit in _rules(th):
        value = signals[name]
        if kind == "min":
            failed = value < limit
        elif kind == "max":
            failed = value > limit
        elif kind == "gt":
            failed = value <= limit
        elif kind == "flag":
            failed = value != 0.0
        elif kind == "min_multiline":
            failed = multiline and value < limit
        else:  # max_multiline
            failed = multiline and value > limit
        if failed:
            return False, f"{family}:{name.removeprefix(family + '_')}"
    return True, None
