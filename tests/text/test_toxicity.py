"""Offline toxicity: English classifier (max over lines) and Chinese wordlist density."""

from __future__ import annotations

import pytest

from lmops.text.toxicity import (
    TOXICITY_THRESHOLD,
    ZH_HITS_PER_100_CHARS_AT_MAX,
    toxicity_score,
    toxicity_scores,
    zh_badword_hits,
)

CLEAN_EN = "The museum opens at nine in the morning and closes at five in the evening."
PROFANE_EN = "You are a fucking idiot and your work is a pile of shit."
CLEAN_ZH = "今天天气很好，我们一起去公园散步，然后在湖边喝茶聊天。"


def test_threshold_constant() -> None:
    assert TOXICITY_THRESHOLD == 0.8


def test_english_clean_vs_profane() -> None:
    assert toxicity_score(CLEAN_EN, "en") < TOXICITY_THRESHOLD
    assert toxicity_score(CLEAN_EN, "en") < 0.2
    assert toxicity_score(PROFANE_EN, "en") > 0.5


def test_english_score_is_the_max_over_lines() -> None:
    long_doc = "\n".join([CLEAN_EN] * 30 + [PROFANE_EN] + [CLEAN_EN] * 30)
    assert toxicity_score(long_doc, "en") == pytest.approx(toxicity_score(PROFANE_EN, "en"))


def test_chinese_wordlist() -> None:
    assert toxicity_score(CLEAN_ZH, "zh") == 0.0
    assert zh_badword_hits("你这个傻逼，滚蛋！") == 2
    assert toxicity_score("你这个傻逼，滚蛋！", "zh") > 0
    # Longest match first: one hit, not one per shorter entry.
    assert zh_badword_hits("妈了个逼") == 1
    # Innocent phrases that contain a substring of a swear word are not hits.
    assert zh_badword_hits("他妈妈今天过生日，今日你好。") == 0


def test_chinese_score_is_hit_density() -> None:
    # One hit in exactly 100 visible characters.
    text = "傻逼" + "好" * 98
    expected = 1.0 / ZH_HITS_PER_100_CHARS_AT_MAX
    assert toxicity_score(text, "zh") == pytest.approx(expected)
    assert toxicity_score(text + "好" * 100, "zh") == pytest.approx(expected / 2)
    assert toxicity_score("傻逼傻逼", "zh") == 1.0


def test_batch_equals_single_calls_and_handles_empty() -> None:
    texts = [CLEAN_EN, PROFANE_EN, CLEAN_ZH, "傻逼", "", "  \n"]
    langs = ["en", "en", "zh", "zh", "en", "zh"]
    batch = toxicity_scores(texts, langs)
    singles = [toxicity_score(t, lang) for t, lang in zip(texts, langs, strict=True)]
    assert batch == pytest.approx(singles)
    assert batch[4] == batch[5] == 0.0
    assert all(0.0 <= s <= 1.0 for s in batch)
    assert toxicity_scores([CLEAN_EN, PROFANE_EN], "en") == pytest.approx(batch[:2])
    with pytest.raises(ValueError):
        toxicity_scores([CLEAN_EN], ["en", "zh"])
