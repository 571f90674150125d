"""C4 line filtering (lmops.data.standard.c4) against datatrove's C4QualityFilter.

Every case has its expected output written out; the same cases, and a few hundred
generated documents, are also run through datatrove's ``C4QualityFilter`` (installed by
``make install``) and compared.
Two settings: ``paper`` is datatrove's defaults (C4 as published, end-punctuation rule
on); ``web`` is the web profile, i.e. C4 as FineWeb ran it
(``filter_no_terminal_punct=False``).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import pytest
from corpus_factory import good_doc

from lmops.data.signals import annotate_rows
from lmops.data.standard import records, resolve
from lmops.data.standard.c4 import C4Lines, c4_lines
from lmops.data.standard.quality_rules import quality_decision
from lmops.data.standard.quality_signals import quality_signals

WEB_STD = resolve("v1", "web")
WEB = WEB_STD.thresholds_for("en")
PAPER_END_PUNCTUATION = (".", "?", "!", '"', "'")  # datatrove's END_PUNCTUATION
PAPER = dataclasses.replace(WEB, c4_end_punctuation=PAPER_END_PUNCTUATION)
POLICY = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)

S = [
    "The river flows quietly past the old mill.",
    "Children play on its banks every summer afternoon.",
    "In winter the water freezes near the bridge.",
    "Farmers once used the mill to grind their wheat.",
    "Today it is a small museum with a cafe.",
]
BODY = "\n".join(S)
ARTICLE = [
    "The history of the printing press is closely tied to the spread of literacy in "
    "Europe. Books became far cheaper to produce.",
    "Historians still debate how quickly this change happened. Some argue that the "
    "effect was gradual and uneven across the continent.",
    "What is clear is that the new technology changed the way people thought about "
    "knowledge. Authority and the written word were never the same again.",
]


@dataclass(frozen=True)
class Kept:
    lines: tuple[str, ...]
    removed: int


@dataclass(frozen=True)
class Dropped:
    reason: str


def kept(*extra: str, removed: int, lines: tuple[str, ...] = tuple(S)) -> Kept:
    return Kept((*lines, *extra), removed)


# name -> (text, expected with datatrove's defaults, expected with the web profile)
CASES: dict[str, tuple[str, Kept | Dropped, Kept | Dropped]] = {
    "clean": (BODY, kept(removed=0), kept(removed=0)),
    "javascript_line": (
        BODY + "\nPlease enable JavaScript to view the comments.",
        kept(removed=1),
        kept(removed=1),
    ),
    "policy_lines": (
        "This website uses cookies to improve your experience.\n"
        + BODY
        + "\nBy using this site you agree to our Terms of Use.",
        kept(removed=2),
        kept(removed=2),
    ),
    "curly_bracket_drops_the_page": (
        BODY + '\nThe settings file holds {"debug": true} for tests.',
        Dropped("curly_bracket"),
        Dropped("curly_bracket"),
    ),
    # The javascript line is removed before the "{" check sees it.
    "curly_bracket_in_a_javascript_line": (
        BODY + "\nEnable javascript { now } please.",
        kept(removed=1),
        kept(removed=1),
    ),
    # Without end punctuation the line is gone before the "{" check, unless that rule is off.
    "curly_bracket_without_end_punctuation": (
        BODY + "\nfunction main() { return 1 }",
        kept(removed=1),
        Dropped("curly_bracket"),
    ),
    "short_lines": (
        "Home\nAbout us\n" + BODY + "\nContact",
        kept(removed=3),
        kept(removed=3),
    ),
    "no_end_punctuation": (
        BODY + "\nThis line has no full stop",
        kept(removed=1),
        kept("This line has no full stop", removed=0),
    ),
    "ellipsis_is_not_an_end": (
        BODY + "\nAnd then the story went on...",
        kept(removed=1),
        kept("And then the story went on...", removed=0),
    ),
    # Markers are cut out, then the line is judged; the word count is taken before.
    "citations": (
        "History[edit]\nThe tower was built in 1889.[1]\n"
        "Its height is 330 metres [citation needed].\nThe sky above it is blue [2]\n"
        + "\n".join(S[:3]),
        kept(
            removed=2, lines=("The tower was built in 1889.", "Its height is 330 metres .", *S[:3])
        ),
        kept(
            removed=1,
            lines=(
                "The tower was built in 1889.",
                "Its height is 330 metres .",
                "The sky above it is blue ",
                *S[:3],
            ),
        ),
    ),
    "lorem_ipsum_drops_the_page": (
        BODY + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
        Dropped("lorem_ipsum"),
        Dropped("lorem_ipsum"),
    ),
    # A two-word line is removed before the lorem ipsum check sees it.
    "lorem_ipsum_in_a_removed_line": ("Lorem ipsum\n" + BODY, kept(removed=1), kept(removed=1)),
    "too_few_sentences": (
        "\n".join(S[:3]),
        Dropped("too_few_sentences"),
        Dropped("too_few_sentences"),
    ),
    # Five sentences on two lines: spaCy's sentencizer counts sentences, not lines.
    "sentences_not_lines": (
        "The sun rose early. Birds sang in the trees. The farmer walked out.\n"
        "He fed the chickens. Then he milked the cows.",
        kept(
            removed=0,
            lines=(
                "The sun rose early. Birds sang in the trees. The farmer walked out.",
                "He fed the chickens. Then he milked the cows.",
            ),
        ),
        kept(
            removed=0,
            lines=(
                "The sun rose early. Birds sang in the trees. The farmer walked out.",
                "He fed the chickens. Then he milked the cows.",
            ),
        ),
    ),
    # "Mr.", "Dr.", "U.S." and "p.m." do not end sentences: four sentences, not nine.
    "abbreviations_do_not_end_sentences": (
        "Mr. Smith met Dr. Jones at noon.\nThey talked about the U.S. economy at length.\n"
        "The meeting ended at 3 p.m. sharp.\nEveryone went home.",
        Dropped("too_few_sentences"),
        Dropped("too_few_sentences"),
    ),
    "word_longer_than_1000_characters": (
        BODY
        + f"\nThis line holds {'x' * 1001} as a word.\nThis line holds {'y' * 1000} as a word.",
        kept(f"This line holds {'y' * 1000} as a word.", removed=1),
        kept(f"This line holds {'y' * 1000} as a word.", removed=1),
    ),
    "three_words_is_enough": (
        BODY + "\nTwo words.\nExactly three words.",
        kept("Exactly three words.", removed=1),
        kept("Exactly three words.", removed=1),
    ),
    # Blank lines go (they are not counted as removed), kept lines are stripped.
    "paragraphs_and_indentation": (
        "\n\n".join(S) + "\n\n   Indented line with spaces around it.   ",
        kept("Indented line with spaces around it.", removed=0),
        kept("Indented line with spaces around it.", removed=0),
    ),
    "paragraph_separator_is_a_line_break": (
        S[0] + "\u2029" + "\n".join(S[1:]),
        kept(removed=0),
        kept(removed=0),
    ),
}
SETTINGS = {"paper": PAPER, "web": WEB}


def _outcome(text: str, th) -> Kept | Dropped:
    got = c4_lines(text, th)
    if got.drop:
        assert got.text == text and got.lines_removed == 0
        return Dropped(got.drop)
    return Kept(tuple(got.text.split("\n")), got.lines_removed)


@pytest.mark.parametrize("name", CASES)
def test_c4_lines_give_the_written_outcome(name: str) -> None:
    text, paper, web = CASES[name]
    assert _outcome(text, PAPER) == paper
    assert _outcome(text, WEB) == web


def test_web_profile_has_datatrove_figures_and_fineweb_end_punctuation_off() -> None:
    assert WEB.c4_max_word_length == 1000
    assert WEB.c4_min_words_per_line == 3
    assert WEB.c4_min_sentences == 5
    assert WEB.c4_policy_phrases == POLICY
    assert WEB.c4_end_punctuation == ()
    assert WEB.c4_remove_citations and WEB.c4_javascript and WEB.c4_curly_bracket
    assert WEB.c4_lorem_ipsum


def test_other_families_and_profiles_keep_only_the_lorem_ipsum_rule() -> None:
    for profile in ("web", "docs", "short"):
        std = resolve("v1", profile)
        for lang in ("zh", "fr", "ja") if profile == "web" else ("en", "zh", "fr", "ja"):
            th = std.thresholds_for(lang)
            assert th.c4_min_sentences is None and th.c4_min_words_per_line is None
            assert th.c4_max_word_length is None and not th.c4_remove_citations
            assert not (th.c4_curly_bracket or th.c4_javascript or th.c4_policy_phrases)
            assert th.c4_lorem_ipsum == (lang != "zh")


def test_with_line_rules_off_the_text_is_untouched() -> None:
    docs = resolve("v1", "docs").thresholds_for("en")
    text = "Usage\n\n    pip install thing\n\nCall `f({})` to start"
    assert c4_lines(text, docs) == C4Lines(text, 0, None)
    assert c4_lines(text + "\nlorem ipsum", docs).drop == "lorem_ipsum"


def test_fine_tuning_boundary_survives_line_removal() -> None:
    sep = records.PROMPT_RESPONSE_SEP
    text = "Menu\n" + "\n".join(S[:2]) + sep + "Ok\n" + "\n".join(S[2:])
    got = c4_lines(text, WEB)
    assert got.text == "\n".join(S[:2]) + sep + "\n".join(S[2:])
    assert got.lines_removed == 2


def test_fineweb_rules_see_the_lines_c4_left() -> None:
    # Navigation lines make 70% of the lines short: FineWeb's short-line rule would drop
    # the page, but C4 removes them first, as in datatrove's FineWeb pipeline.
    nav = ["Home", "News", "Sport", "Weather", "About us", "Contact", "Log in"]
    text = "\n".join([*nav, *ARTICLE])
    no_c4 = dataclasses.replace(WEB, c4_min_words_per_line=None)
    assert quality_decision(quality_signals(text, "en", no_c4), "en", no_c4) == (
        False,
        "fineweb:short_lines_ratio",
    )
    sig = quality_signals(text, "en", WEB)
    assert sig["c4_lines_removed"] == 7
    assert sig["short_lines_ratio"] == 0.0 and sig["n_lines"] == 10
    assert quality_decision(sig, "en", WEB) == (True, None)


def test_ingest_stores_the_cleaned_text_and_counts_removed_lines() -> None:
    article = good_doc(0)["text"]
    text = "Home\nPlease enable JavaScript to comment.\n" + article
    row = {
        "id": "a",
        "text": text,
        "source": "t",
        "license": "CC0-1.0",
        "meta": "{}",
        "file": "f",
        "line": 1,
        "record": "{}",
    }
    (out,) = annotate_rows([row], WEB_STD)
    assert out["reason"] is None
    assert out["text"] == article and out["c4_lines_removed"] == 2
    assert out["doc_hash"] == records.doc_hash(article) and out["n_chars"] == len(article)


# --------------------------------------------------------------------------- datatrove


@pytest.fixture(scope="module")
def datatrove_c4():
    """datatrove's C4QualityFilter for each setting: ``text -> Kept | Dropped``."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter

    def run(text: str, setting: str) -> Kept | Dropped:
        f = C4QualityFilter(filter_no_terminal_punct=setting == "paper")
        doc = Document(text=text, id="x")
        result = f.filter(doc)
        if isinstance(result, tuple):
            return Dropped(result[1])
        return Kept(tuple(doc.text.split("\n")), -1)

    return run


def _without_count(outcome: Kept | Dropped) -> Kept | Dropped:
    return Kept(outcome.lines, -1) if isinstance(outcome, Kept) else outcome


def test_datatrove_figures_are_the_web_profile_figures() -> None:
    import inspect

    from datatrove.pipeline.filters import c4_filters

    defaults = inspect.signature(c4_filters.C4QualityFilter.__init__).parameters
    assert WEB.c4_max_word_length == defaults["max_word_length"].default
    assert WEB.c4_min_words_per_line == defaults["min_words_per_line"].default
    assert WEB.c4_min_sentences == defaults["min_num_sentences"].default
    assert WEB.c4_policy_phrases == tuple(c4_filters.POLICY_SUBSTRINGS)
    assert PAPER_END_PUNCTUATION == c4_filters.END_PUNCTUATION


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("setting", SETTINGS)
def test_case_matches_datatrove(datatrove_c4, name: str, setting: str) -> None:
    text = CASES[name][0]
    assert _without_count(_outcome(text, SETTINGS[setting])) == datatrove_c4(text, setting)


POOL = [
    *S,
    "Sales rose by 3.5 percent in the second quarter of the year.",
    "Dr. Brown arrived at 9 a.m. and left before lunch.",
    'She asked, "Where is the station?"',
    "He said it was 'fine' and walked away.",
    "Is this the end? No! It is only the beginning.",
    "Click here",
    "Share this",
    "",
    "   ",
    "Menu Home About",
    "A heading without a full stop at the end",
    "Our privacy policy explains what we collect.",
    "This site uses cookies.",
    "JavaScript is disabled in your browser.",
    "The function returns {} when empty.",
    "lorem ipsum dolor sit amet.",
    "Read more...",
    "The bridge opened in 1932.[3]",
    "Population grew quickly.[citation needed]",
    "Early life[edit]",
    "A list item that ends with a colon:",
    "Prices start at $5 (tax incl.)",
    "Visit www.example.com. Then sign up.",
    "The word " + "z" * 1200 + " is far too long.",
    "Tabs\tand  double  spaces are here too.",
    "\u00a0Non-breaking spaces wrap this line.\u00a0",
]


def _generated_documents(n: int) -> list[str]:
    rng = random.Random(0)
    docs = []
    for _ in range(n):
        lines = rng.choices(POOL, k=rng.randint(1, 12))
        sep = rng.choice(["\n", "\n\n", "\n \n"])
        docs.append(sep.join(lines))
    return docs


@pytest.mark.parametrize("setting", SETTINGS)
def test_generated_documents_match_datatrove(datatrove_c4, setting: str) -> None:
    docs = _generated_documents(400)
    outcomes = [_outcome(d, SETTINGS[setting]) for d in docs]
    mismatches = [
        (d, o, datatrove_c4(d, setting))
        for d, o in zip(docs, outcomes, strict=True)
        if _without_count(o) != datatrove_c4(d, setting)
    ]
    assert not mismatches, mismatches[:3]
    # The sample exercises every outcome, so a rule that never fires would show.
    kinds = {o.reason if isinstance(o, Dropped) else "kept" for o in outcomes}
    assert kinds == {"kept", "lorem_ipsum", "curly_bracket", "too_few_sentences"}


def test_the_sentencizer_loads_without_torch_and_torch_still_imports_after() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lmops.data.standard.c4 import _sentences\n"
        "n = _sentences('It works. Does it? Yes, Mr. Smith.')\n"
        "assert 'torch' not in sys.modules, 'spaCy imported torch'\n"
        "import torch\n"
        "print(n, torch.tensor([1, 2]).sum().item())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", "3"]
