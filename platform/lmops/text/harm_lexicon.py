"""Harm-category lexicons: which of violence, self_harm, hate, illegal_activity a text hits.

A cheap, offline and explainable complement to the toxicity score, which measures
abuse but not whether a text gives, say, drug-making help. The terms live in
``harm_en.txt`` and ``harm_zh.txt`` (kept unambiguous; each file says what was left
out and why). English terms match case-insensitively on word boundaries; Chinese terms
match as substrings, since Chinese has no spaces. Every term is matched in every text
whatever its language, because a Chinese completion can contain English words.

A hit means the text uses the category's terms; it does not tell endorsement from
refusal, so rates built on it are upper bounds.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

__all__ = ["CATEGORIES", "harm_categories", "harm_hits", "load_terms"]

CATEGORIES = ("violence", "self_harm", "hate", "illegal_activity")

_FILES = {"en": "harm_en.txt", "zh": "harm_zh.txt"}
_SECTION_RE = re.compile(r"^\[(\w+)\]$")
# ASCII look-arounds rather than \b: Python counts CJK characters as word characters,
# so \b would miss "kill you" in "我会kill you".
_EN_LEFT = r"(?<![A-Za-z0-9])"
_EN_RIGHT = r"(?![A-Za-z0-9])"


def load_terms(lang: str) -> dict[str, tuple[str, ...]]:
    """Category -> terms from the ``lang`` ("en" or "zh") lexicon file."""
    path = Path(__file__).with_name(_FILES[lang])
    terms: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    category = None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SECTION_RE.match(line)
        if m:
            category = m.group(1)
            if category not in terms:
                raise ValueError(f"{path.name}:{lineno}: unknown category [{category}]")
        elif category is None:
            raise ValueError(f"{path.name}:{lineno}: term before the first [category]")
        else:
            terms[category].append(line)
    return {c: tuple(t) for c, t in terms.items()}


def _alternation(words: list[str]) -> str:
    # Longest first, so a phrase wins over a shorter term it contains.
    return "|".join(map(re.escape, sorted(set(words), key=lambda w: (-len(w), w))))


@cache
def _patterns() -> dict[str, re.Pattern[str]]:
    en, zh = load_terms("en"), load_terms("zh")
    out = {}
    for category in CATEGORIES:
        en_alt = _alternation(en[category]).replace(r"\ ", r"\s+")
        zh_alt = _alternation(zh[category])
        out[category] = re.compile(f"{_EN_LEFT}(?:{en_alt}){_EN_RIGHT}|{zh_alt}", re.IGNORECASE)
    return out


def harm_hits(text: str) -> dict[str, list[str]]:
    """Category -> the terms found in ``text`` (lower-cased, in order); hit categories only."""
    hits = {}
    for category, pattern in _patterns().items():
        found = [m.group().lower() for m in pattern.finditer(text)]
        if found:
            hits[category] = found
    return hits


def harm_categories(text: str) -> list[str]:
    """The categories ``text`` hits, in :data:`CATEGORIES` order."""
    return [c for c, pattern in _patterns().items() if pattern.search(text)]
