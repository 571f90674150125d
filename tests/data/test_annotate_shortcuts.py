"""The annotate stage's shortcuts give exactly what the direct computations give."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest
from ftfy.badness import MOJIBAKE_CATEGORIES
from ftfy.badness import is_bad as ftfy_is_bad

from lmops.data.executor import _split
from lmops.data.standard.loader import thresholds_for
from lmops.data.standard.quality_rules import quality_decision
from lmops.data.standard.quality_signals import (
    LAZY_SIGNALS,
    lazy_quality_signals,
    quality_signals,
)
from lmops.data.standard.quality_thresholds import QualityThresholds
from lmops.text import mojibake
from lmops.text.pii import _PHONE_RES
from lmops.text.toxicity import _profanity_predict_prob, toxicity_scores

EN_DOC = (
    "The library reads the file and returns a table. It is fast and simple to use.\n"
    "Install it with pip and import it in your code. The documentation has examples.\n"
) * 6


def _expand(ranges: str) -> str:
    return re.sub(
        r"(.)-(.)",
        lambda m: "".join(map(chr, range(ord(m.group(1)), ord(m.group(2)) + 1))),
        ranges,
    )


def test_windowed_mojibake_check_matches_ftfy():
    assert mojibake.WINDOWED  # the installed ftfy's pattern allows the windows
    odd = sorted(set("".join(map(_expand, MOJIBAKE_CATEGORIES.values()))) | set("ÂÃÎÐØÙà√≈‚вЂ"))
    rng = random.Random(7)
    found = 0
    for _ in range(20_000):
        text = "".join(
            rng.choice(odd) if rng.random() < 0.15 else rng.choice("abc de\n.,")
            for _ in range(rng.randint(0, 40))
        )
        expected = ftfy_is_bad(text)
        found += expected
        assert mojibake.is_bad(text) == expected, repr(text)
    assert found > 1000  # the strings exercise both answers
    # ftfy's "^[ÃÂ][ ]" matches at the start of the text only, not of a window.
    assert mojibake.is_bad("Ã x") and ftfy_is_bad("Ã x")
    for text in ("1 Ã x", "1" * 100 + "Ã x", "1" * 100 + "\nÃ x"):
        assert not mojibake.is_bad(text) and not ftfy_is_bad(text)


# The North-American phone pattern as written before it was split by first character.
_NA_DIRECT = re.compile(
    r"(?<![A-Za-z0-9_+])(?:\+?1[ .-]?)?"
    r"(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![A-Za-z0-9_])"
)


def test_north_american_phone_pattern_matches_direct_form():
    rng = random.Random(3)

    def digits(k: int, first: str = "0123456789") -> str:
        return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(k - 1))

    hits = 0
    for _ in range(30_000):
        text = (
            rng.choice(["", "a", " ", "1", "+", "_"])
            + rng.choice(["", "+1", "1", "+1 ", "1-", "+", "+12", "11", "(", "9"])
            + rng.choice([f"({digits(3, '123456789')})", digits(3), digits(2), digits(4)])
            + rng.choice(["", " ", ".", "-", "  "])
            + rng.choice([digits(3), digits(3, "23456789"), digits(2)])
            + rng.choice([" ", ".", "-", ""])
            + rng.choice([digits(4), digits(5), digits(3)])
            + rng.choice(["", "a", "_", "1", " ", ".", "-1", "\n"])
        )
        expected = [(m.span(), m.group()) for m in _NA_DIRECT.finditer(text)]
        hits += bool(expected)
        assert [(m.span(), m.group()) for m in _PHONE_RES[2].finditer(text)] == expected
    assert hits > 100


@pytest.mark.parametrize(
    "text",
    [
        EN_DOC,
        "Too short to pass.",
        "word " * 80,
        "alpha beta gamma delta epsilon.\n" * 30,
        EN_DOC + "\n\n" + EN_DOC,
        "",
    ],
)
def test_lazy_signals_give_the_same_decision_and_values(text):
    th = thresholds_for("en")
    lazy = lazy_quality_signals(text, "en", th)
    assert quality_decision(lazy, "en", th) == quality_decision(
        quality_signals(text, "en", th), "en", th
    )
    assert lazy.complete() == quality_signals(text, "en", th)
    assert set(LAZY_SIGNALS) <= set(quality_signals(text, "en", th))


def test_lazy_signals_skip_what_the_decision_does_not_read():
    th = thresholds_for("en")
    lazy = lazy_quality_signals("Too short to pass.", "en", th)
    assert quality_decision(lazy, "en", th) == (False, "gopher_quality:n_words")
    assert not any(key in lazy for key in LAZY_SIGNALS)
    # With every rule off, every lazy signal is still available on request.
    bare = lazy_quality_signals(EN_DOC, "en", QualityThresholds())
    assert bare["dup_10gram"] == quality_signals(EN_DOC, "en", QualityThresholds())["dup_10gram"]


def test_sentence_count_shortcut_matches_spacy():
    pytest.importorskip("spacy")
    from lmops.data.standard import c4

    nlp = c4._sentencizer()
    for line in [
        "no full stop in this line at all",
        "One. Two! Three?",
        "e.g. this is one",
        "dash - and colon: still one",
        "",
        "trailing dot.",
    ]:
        nlp.max_length = len(line) + 10  # as c4._sentences sets it
        direct = max(1, sum(1 for _ in nlp(line).sents))
        assert c4._sentences(line) == direct, line


def test_toxicity_scores_each_distinct_chunk_once_with_the_same_result():
    docs = [
        "you are an idiot\nhave a nice day",
        "have a nice day",
        "fine text here\nyou are an idiot",
    ]
    scores = toxicity_scores(docs, "en")
    assert scores == [toxicity_scores([d], "en")[0] for d in docs]
    from profanity_check import predict_prob

    chunks = ["you are an idiot", "have a nice day", "fine text here"]
    assert _profanity_predict_prob()(chunks).tolist() == predict_prob(chunks).tolist()


def test_split_keeps_rows_in_order_within_the_byte_budget():
    texts = ["a" * 10, "b" * 300, "c" * 50, "d" * 50, "e" * 50, "f" * 5]
    table = pa.table({"id": list("abcdef"), "text": texts})
    parts = list(_split(table, 100))
    assert pa.concat_tables(parts).equals(table)
    assert [p.column("id").to_pylist() for p in parts] == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert list(_split(table, 10_000)) == [table]


def test_no_letter_token_count_matches_the_direct_regex():
    from lmops.data.standard.quality_signals import _NO_LETTER_TOKEN_RE, _count_no_letter_tokens

    chars = [" ", "\t", "\n", "\u00a0", "\u3000", "a", "1", "_", "²", "!", "中", "é", "-", "."]
    rng = random.Random(5)
    for _ in range(30_000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 14)))
        assert _count_no_letter_tokens(text) == len(_NO_LETTER_TOKEN_RE.findall(text)), repr(text)
