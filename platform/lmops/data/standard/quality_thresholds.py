"""Quality thresholds: the figures the keep/drop decision compares a document's signals with.

:class:`QualityThresholds` holds one language family's figures. The standard TOML has
one ``[quality.*]`` table per family, which :mod:`lmops.data.standard.loader` turns into
an instance; :func:`lang_family` says which table applies (``lang`` is an ISO 639-1
code; region suffixes are ignored):

* ``en``: every rule (datatrove's FineWeb defaults).
* ``zh``/``cmn``: FineWeb-2 ``cmn_Hani`` + ChineseWebText; words come from jieba
  (jieba-rs) because Chinese has no spaces; n-grams are of jieba words.
* ``unsegmented`` (``ja``, ``th``, ``lo``, ``km``, ``my``, ``bo``): whitespace "words"
  are whole clauses there, so the standard switches the word-based rules off.
* ``other``: any other code; the English figures without the stop-word rule.

This module imports nothing else of the standard: the loader, the C4 filter, the
signals and the rules all read it, and it reads none of them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

__all__ = ["QualityThresholds", "lang_family", "spacy_available"]

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)

_ZH_LANGS = frozenset({"zh", "cmn"})
_UNSEGMENTED_LANGS = frozenset({"ja", "th", "lo", "km", "my", "bo"})

NgramLimits = tuple[tuple[int, float], ...]


@dataclass(frozen=True, kw_only=True)
class QualityThresholds:
    """Every threshold :func:`~.quality_rules.quality_decision` uses; ``None`` switches a rule off.

    The figures live in the standard TOML (``lmops/data/standard/v1.toml``), which
    :mod:`lmops.data.standard.loader` turns into one instance per language family. The
    bare constructor switches every rule off.
    """

    # Word lists and counting settings the signals use.
    stopwords: frozenset[str] = frozenset()
    short_line_chars: int = 0

    # ChineseWebText: the document must have MORE than ``min_chars`` visible characters.
    min_chars: int | None = None
    min_mean_line_length: float | None = None
    min_cjk_ratio: float | None = None
    # Gopher quality.
    min_words: int | None = None
    max_words: int | None = None
    min_mean_word_length: float | None = None
    max_mean_word_length: float | None = None
    max_hash_ratio: float | None = None
    max_ellipsis_ratio: float | None = None
    max_bullet_lines_ratio: float | None = None
    max_ellipsis_lines_ratio: float | None = None
    min_alpha_words_ratio: float | None = None
    min_stopwords: int | None = None
    # Gopher repetition.
    max_dup_para_ratio: float | None = None
    max_dup_para_char_ratio: float | None = None
    max_dup_line_ratio: float | None = None
    max_dup_line_char_ratio: float | None = None
    max_top_ngram_ratio: NgramLimits = ()
    max_dup_ngram_ratio: NgramLimits = ()
    # C4, datatrove's C4QualityFilter (see lmops.data.standard.c4). Line rules: a word
    # longer than this; citation markers cut; no end punctuation; too few words;
    # "javascript"; a policy phrase. Document rules: lorem ipsum, "{", too few sentences.
    c4_max_word_length: int | None = None
    c4_remove_citations: bool = False
    c4_end_punctuation: tuple[str, ...] = ()
    c4_min_words_per_line: int | None = None
    c4_lorem_ipsum: bool = False
    c4_javascript: bool = False
    c4_curly_bracket: bool = False
    c4_policy_phrases: tuple[str, ...] = ()
    c4_min_sentences: int | None = None
    # FineWeb. The terminal-punctuation and short-line rules only apply to documents
    # with more than one non-empty line: a single paragraph trivially passes them.
    min_terminal_punct_lines_ratio: float | None = None
    max_short_lines_ratio: float | None = None
    fineweb_max_dup_line_char_ratio: float | None = None
    max_newline_per_word: float | None = None

    def __post_init__(self) -> None:
        for name in _PHRASE_LISTS:
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a list of strings, not {getattr(self, name)!r}")
        if self.c4_min_sentences is not None and not spacy_available():
            raise ValueError(
                "c4_min_sentences counts sentences with spaCy, which is not installed: "
                "pip install 'spacy>=3.8', or set c4_min_sentences = false"
            )
        for n, _ in self.max_top_ngram_ratio:
            if n not in TOP_NGRAM_SIZES:
                raise ValueError(f"top n-gram size {n} not in {TOP_NGRAM_SIZES}")
        for n, _ in self.max_dup_ngram_ratio:
            if n not in DUP_NGRAM_SIZES:
                raise ValueError(f"duplicate n-gram size {n} not in {DUP_NGRAM_SIZES}")


_PHRASE_LISTS = ("c4_end_punctuation", "c4_policy_phrases")


def lang_family(lang: str) -> str:
    """``en``, ``zh``, ``unsegmented`` or ``other``: which ``[quality.*]`` table applies."""
    base = (lang or "").lower().replace("_", "-").split("-", 1)[0]
    if base == "en":
        return "en"
    if base in _ZH_LANGS:
        return "zh"
    if base in _UNSEGMENTED_LANGS:
        return "unsegmented"
    return "other"


def spacy_available() -> bool:
    """Whether spaCy, which C4's sentence count (``c4_min_sentences``) needs, is installed."""
    return importlib.util.find_spec("spacy") is not None
