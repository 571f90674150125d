"""lmops' English word definition as a datatrove tokenizer, to compare the two fairly.

lmops' word-based rules count whitespace tokens; datatrove's count spaCy tokens, where
every punctuation mark is a word. Given this tokenizer as its ``language``, datatrove's
Gopher and FineWeb filters count words as lmops does. Used by the agreement test and
the throughput benchmark; importing it needs datatrove (the ``bench`` extra).
"""

from __future__ import annotations

from datatrove.utils.word_tokenizers import WordTokenizer


class WhitespaceWords(WordTokenizer):
    """Whitespace tokens as words; only the word-based rules may use it."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        raise NotImplementedError("only the word-based rules use this tokenizer")

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError("only the word-based rules use this tokenizer")
