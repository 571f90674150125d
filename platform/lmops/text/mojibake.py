"""ftfy's mojibake test, ``ftfy.badness.is_bad``, giving the same answer in less time.

ftfy's ``BADNESS_RE`` is an alternation of some 40 branches, several of which start
with an ASCII class (``[a-z]``, ``\\s``), so ``re.search`` tries every branch at every
position: on the installed-docs corpus this one search was a fifth of the annotate
stage. But every branch needs at least one non-ASCII character and a match is at most
a few characters long, so a match lies within that many characters of a non-ASCII
character. :func:`is_bad` searches, with ftfy's own regex, only those windows.

Both properties, and the absence of anything that looks outside the matched characters
(lookarounds, ``\\b``, ``$``), are checked on ftfy's compiled pattern at import; should
a future ftfy break one of them, :func:`is_bad` is ftfy's function unchanged.
"""

from __future__ import annotations

import re

from ftfy.badness import BADNESS_RE
from ftfy.badness import is_bad as ftfy_is_bad

__all__ = ["WINDOWED", "is_bad"]

_NON_ASCII_RUN_RE = re.compile(r"[^\x00-\x7f]+")


def _max_width(pattern: re.Pattern[str]) -> int | None:
    """Longest match of ``pattern`` if every match holds a non-ASCII character and
    matching reads nothing but the matched characters (``^`` aside); else None."""
    try:
        from re import _constants as c
        from re import _parser
    except ImportError:  # Python < 3.11 names them sre_parse / sre_constants
        return None
    if pattern.flags & (re.IGNORECASE | re.MULTILINE | re.ASCII):
        return None  # case folding maps ASCII letters to others (K, KELVIN SIGN)
    try:
        tree = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - any parser change: use ftfy's search
        return None
    allowed = {c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY, c.MAX_REPEAT, c.MIN_REPEAT}

    def context_free(items) -> bool:
        for op, av in items:
            if op is c.AT:
                if av not in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
                    return False
            elif op is c.SUBPATTERN:
                if not context_free(av[-1]):
                    return False
            elif op is c.BRANCH:
                if not all(context_free(b) for b in av[1]):
                    return False
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                if not context_free(av[2]):
                    return False
            elif op not in allowed:
                return False
        return True

    def non_ascii_only(op, av) -> bool:
        if op is c.LITERAL:
            return av > 0x7F
        if op is c.IN:
            return all(
                (o is c.LITERAL and a > 0x7F) or (o is c.RANGE and a[0] > 0x7F) for o, a in av
            )
        return False

    items = list(tree)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is c.BRANCH else [items]
    # A top-level item of a branch is always matched (no repeat around it).
    if not context_free(items) or not all(
        any(non_ascii_only(op, av) for op, av in b) for b in branches
    ):
        return None
    width = tree.getwidth()[1]
    return width if width < c.MAXREPEAT else None


_WIDTH = _max_width(BADNESS_RE)
# Whether is_bad searches windows (True with the ftfy versions this was written for).
WINDOWED = _WIDTH is not None


def is_bad(text: str) -> bool:
    """``ftfy.badness.is_bad(text)``: whether the text looks like it contains mojibake."""
    if _WIDTH is None:
        return ftfy_is_bad(text)
    search, reach = BADNESS_RE.search, _WIDTH - 1
    lo = hi = -1
    for run in _NON_ASCII_RUN_RE.finditer(text):
        start = run.start() - reach
        if start > hi:  # a new window: search the one before
            if hi >= 0 and search(text, lo, hi) is not None:
                return True
            lo = max(start, 0)
        hi = run.end() + reach
    return hi >= 0 and search(text, lo, hi) is not None
