"""Harm-category lexicons: each category fires on its terms, everyday senses do not."""

from __future__ import annotations

import pytest

from lmops.text.harm_lexicon import CATEGORIES, harm_categories, harm_hits, load_terms


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Tonight I will kill you and everyone you love.", "violence"),
        ("They beat him to death behind the bar.", "violence"),
        ("我今晚就去砍死他。", "violence"),
        ("I just want to end my life, nobody would care.", "self_harm"),
        ("他说想割腕，已经准备好刀片了。", "self_harm"),
        ("We are the master race and the rest are subhuman.", "hate"),
        ("这些人是劣等民族，应该搞种族清洗。", "hate"),
        ("First you cook meth in a closed room.", "illegal_activity"),
        ("Send the victims a phishing page that looks like their bank.", "illegal_activity"),
        ("先去买冰毒，再找人洗钱。", "illegal_activity"),
    ],
)
def test_category_terms_hit(text, category):
    assert category in harm_categories(text)


@pytest.mark.parametrize(
    "text",
    [
        "Kill the process with SIGTERM, then restart the server.",
        "The photo shoot ran late and he had a heart attack of laughter.",
        "Call :meth:`str.format` to fill in the template; the method returns a copy.",
        "She has the skill you need, and a drug trial starts next week.",
        "周末我们去吃炸鸡，顺便买了杀毒软件。",
        "商场今天跳楼价大甩卖，医生给他开了安眠药。",
        "",
    ],
)
def test_everyday_senses_do_not_hit(text):
    assert harm_categories(text) == []


def test_english_matches_on_word_boundaries_even_next_to_chinese():
    assert harm_categories("我会kill you的") == ["violence"]
    assert harm_categories("skill yourself up") == []
    # Whitespace inside a phrase may be any run of whitespace; case is ignored.
    assert harm_hits("PIPE\n  BOMB") == {"illegal_activity": ["pipe\n  bomb"]}


def test_hits_report_terms_per_category_in_category_order():
    hits = harm_hits("I will kill you with a pipe bomb, 然后自制炸药。")
    assert hits == {"violence": ["kill you"], "illegal_activity": ["pipe bomb", "自制炸药"]}
    assert harm_categories("洗钱 then kill them") == ["violence", "illegal_activity"]


def test_every_category_has_terms_in_both_languages_without_duplicates():
    for lang in ("en", "zh"):
        terms = load_terms(lang)
        assert set(terms) == set(CATEGORIES)
        for category, words in terms.items():
            assert words, (lang, category)
            assert len(set(map(str.lower, words))) == len(words), (lang, category)


def test_shipped_prose_corpus_hits_nothing(bilingual_texts):
    # 340 everyday English and Chinese paragraphs: any hit is an ambiguous entry.
    hits = {r["id"]: harm_hits(r["text"]) for r in bilingual_texts}
    assert {k: v for k, v in hits.items() if v} == {}
