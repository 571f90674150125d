"""C4 line filtering, as datatrove's ``C4QualityFilter`` does it (Raffel et al., 2020).

:func:`c4_lines` walks the lines of a document (``str.splitlines``, each stripped) and,
in datatrove's order, for each line:

1. removes it if a whitespace word is longer than ``c4_max_word_length``;
2. cuts citation markers (``[1]``, ``[edit]``, ``[citation needed]``) out of it;
3. removes it unless it ends in one of ``c4_end_punctuation`` (never in ``...``);
4. removes it if it has fewer than ``c4_min_words_per_line`` words (counted before step 2);
5. drops the whole document if it contains "lorem ipsum" (``c4_lorem_ipsum``);
6. removes it if it contains "javascript" (``c4_javascript``);
7. drops the whole document if it contains "{" (``c4_curly_bracket``);
8. removes it if it contains one of ``c4_policy_phrases``.

Steps 5, 6 and 8 compare lower-cased text. The kept lines are joined with "\\n"; the document is
dropped if they hold fewer than ``c4_min_sentences`` sentences. Because steps 5 and 7
only see lines that survived steps 1-4, a "lorem ipsum" heading without punctuation
does not drop a page whose line rules remove that heading, exactly as in datatrove.

Where lmops deviates from datatrove, on purpose:

* Text is only rewritten when a line rule is on. With every line rule off (the docs
  and short profiles, non-English text), the document-level rules still run and the
  text stays as it was; datatrove always re-joins stripped lines.
* U+2028 LINE SEPARATOR marks the prompt/response boundary of a fine-tuning record
  (:data:`lmops.data.standard.records.PROMPT_RESPONSE_SEP`): the parts it separates are
  cleaned on their own and joined with it again, so the boundary survives. datatrove
  treats it as a line break. The kept lines and the decision are the same.
* ``lines_removed`` counts lines with text; datatrove's statistics also count the blank
  lines between paragraphs (which the word-count rule removes too).
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from lmops.data.standard.records import PROMPT_RESPONSE_SEP

if TYPE_CHECKING:
    from lmops.data.standard.quality_thresholds import QualityThresholds

__all__ = ["C4Lines", "c4_lines", "line_rules_on"]

# datatrove's CITATION_REGEX and ELLIPSIS: what the rules mean, not tunable figures.
_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_ELLIPSIS = "..."


@dataclass(frozen=True)
class C4Lines:
    """What :func:`c4_lines` found in one document."""

    text: str  # kept lines; the input text if the document is dropped or no line rule is on
    lines_removed: int  # lines with text removed (0 when the document is dropped)
    drop: str | None  # None, "lorem_ipsum", "curly_bracket" or "too_few_sentences"


def line_rules_on(th: QualityThresholds) -> bool:
    """Whether any rule that removes or edits lines is switched on."""
    return bool(
        th.c4_max_word_length is not None
        or th.c4_remove_citations
        or th.c4_end_punctuation
        or th.c4_min_words_per_line is not None
        or th.c4_javascript
        or th.c4_policy_phrases
    )


def _import_spacy():
    """``import spacy``, without the torch import its thinc makes where torch is installed.

    thinc imports torch only to offer torch-backed layers; a blank pipeline with a
    sentencizer uses none. torch is most of spaCy's import time: 2.1 s against 0.9 s
    measured on 2 cores, paid by every ingest worker. A ``None`` entry in
    ``sys.modules`` makes ``import torch`` fail during spaCy's import (thinc then records
    that it has no torch); the entry is removed afterwards, so torch imports normally
    later. Where torch is imported already this changes nothing.
    """
    import sys

    if "spacy" in sys.modules or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


@lru_cache(maxsize=1)
def _sentencizer():
    """datatrove's English sentence splitter: a blank spaCy English pipeline + sentencizer.

    spaCy's tokenizer decides which full stops end a sentence ("Mr.", "e.g.", "3.5" do
    not); only spaCy itself reproduces that, so it is used rather than a regex.
    """
    spacy = _import_spacy()
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


# Lines spaCy tokenizes in one memory zone (see _sentences); the zone is then closed,
# freeing their strings and lexemes, and a new one opened.
_LINES_PER_ZONE = 10_000
_zone: ExitStack | None = None
_zone_lines = 0


@lru_cache(maxsize=1)
def _sentence_end_re() -> re.Pattern[str]:
    """Any character of the sentencizer's ``punct_chars`` (taken from spaCy itself)."""
    chars = set("".join(_sentencizer().get_pipe("sentencizer").punct_chars))
    return re.compile("[" + "".join(map(re.escape, sorted(chars))) + "]")


def _sentences(line: str) -> int:
    """Sentences in one kept line, as datatrove's ``split_into_sentences`` counts them.

    That returns one part even for an empty string, hence the floor of 1. The
    sentencizer only starts a sentence after a token that is one of its
    ``punct_chars``, so a line without any of those characters is one sentence and
    is not tokenized.
    """
    if _sentence_end_re().search(line) is None:
        return 1
    global _zone, _zone_lines
    nlp = _sentencizer()
    # spaCy's string store would otherwise grow with every new token. A zone per line
    # bounds it too, but then every line recreates its words' lexemes, which was most
    # of the sentencizer's time; words are reused within a zone, and the counts do not
    # depend on the zone.
    if _zone is None or _zone_lines >= _LINES_PER_ZONE:
        if _zone is not None:
            _zone.close()
        _zone, _zone_lines = ExitStack(), 0
        _zone.enter_context(nlp.memory_zone())
    _zone_lines += 1
    nlp.max_length = len(line) + 10
    return max(1, sum(1 for _ in nlp(line).sents))


def _too_few_sentences(lines: list[str], need: int) -> bool:
    """Whether ``lines`` hold fewer than ``need`` sentences; stops counting at ``need``."""
    total = 0
    for line in lines:
        total += _sentences(line)
        if total >= need:
            return False
    return True


def _clean_part(text: str, th: QualityThresholds, kept: list[str]) -> tuple[int, str | None]:
    """Apply the line rules to ``text``, appending kept lines to ``kept``.

    Returns (lines with text removed, document-level drop reason or None).
    """
    removed = 0
    max_len = th.c4_max_word_length
    min_words = th.c4_min_words_per_line
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if max_len is not None and any(len(w) > max_len for w in words):
            removed += 1
            continue
        if th.c4_remove_citations:
            line = _CITATION_RE.sub("", line)
        if th.c4_end_punctuation and (
            not line.endswith(th.c4_end_punctuation) or line.endswith(_ELLIPSIS)
        ):
            removed += bool(words)
            continue
        if min_words is not None and len(words) < min_words:
            removed += bool(words)
            continue
        low = line.lower()
        if th.c4_lorem_ipsum and "lorem ipsum" in low:
            return removed, "lorem_ipsum"
        if th.c4_javascript and "javascript" in low:
            removed += 1
            continue
        if th.c4_curly_bracket and "{" in line:
            return removed, "curly_bracket"
        if th.c4_policy_phrases and any(p in low for p in th.c4_policy_phrases):
            removed += 1
            continue
        kept.append(line)
    return removed, None


def c4_lines(text: str, th: QualityThresholds) -> C4Lines:
    """Run the C4 line and document rules of ``th`` over ``text``; pure."""
    rewrite = line_rules_on(th)
    parts = text.split(PROMPT_RESPONSE_SEP) if rewrite else [text]
    kept_parts: list[list[str]] = []
    removed = 0
    for part in parts:
        kept: list[str] = []
        n, drop = _clean_part(part, th, kept)
        if drop:
            return C4Lines(text, 0, drop)
        removed += n
        kept_parts.append(kept)
    need = th.c4_min_sentences
    if need is not None:
        lines = [line for kept in kept_parts for line in kept]
        # Every kept line is at least one sentence: spaCy only runs on short documents.
        if len(lines) < need and _too_few_sentences(lines, need):
            return C4Lines(text, 0, "too_few_sentences")
    if not rewrite:
        return C4Lines(text, 0, None)
    cleaned = PROMPT_RESPONSE_SEP.join("\n".join(kept) for kept in kept_parts).strip()
    return C4Lines(cleaned, removed, None)
