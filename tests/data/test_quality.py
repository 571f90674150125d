"""Quality signals and rule decisions (Gopher, C4, FineWeb, FineWeb-2/ChineseWebText)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from lmops.data.standard import resolve
from lmops.data.standard.loader import thresholds_for
from lmops.data.standard.quality_rules import quality_decision
from lmops.data.standard.quality_signals import quality_signals
from lmops.data.standard.quality_thresholds import QualityThresholds

EN_DEFAULTS = thresholds_for("en")
ZH_DEFAULTS = thresholds_for("zh")
OTHER_DEFAULTS = thresholds_for("fr")
UNSEGMENTED_DEFAULTS = thresholds_for("ja")

EN_TEXT = (
    "The history of the printing press is closely tied to the spread of literacy in "
    "Europe. When Johannes Gutenberg introduced movable type in the middle of the "
    "fifteenth century, books became far cheaper to produce, and ideas that had once "
    "circulated only among a small group of scholars could reach merchants, artisans "
    "and students.\n\n"
    "Historians still debate how quickly this change happened. Some argue that the "
    "effect was gradual and uneven, while others point to the rapid growth of print "
    "shops in cities such as Venice and Antwerp. What is clear is that the new "
    "technology changed the way people thought about knowledge, authority and the "
    "written word."
)

ZH_TEXT = (
    "自然语言处理是人工智能领域中的一个重要方向，它研究如何让计算机理解和生成人类的语言。"
    "早在上世纪五十年代，研究人员就开始尝试用规则的方法进行机器翻译，但效果一直不太理想。\n"
    "随着互联网的普及，大量的文本数据为统计方法提供了基础。研究者们发现，只要有足够多的语料，"
    "模型就可以从数据中自动学习语言的规律，而不必依赖人工编写的规则。\n"
    "近年来，基于深度学习的大规模语言模型取得了显著的进展。这些模型在阅读理解、文本摘要和对话"
    "系统等任务上都表现出色，也引发了人们对数据质量、隐私保护和社会影响的广泛讨论。\n"
    "在训练这类模型之前，工程师通常需要对网页数据进行清洗和过滤，去除重复的内容、广告以及质量"
    "较低的页面。这一步骤看似简单，却对最终模型的效果有着重要的影响。"
)


def decide(text: str, lang: str) -> tuple[bool, str | None]:
    return quality_decision(quality_signals(text, lang), lang)


# --------------------------------------------------------------------------- thresholds


def test_default_figures() -> None:
    en, zh = EN_DEFAULTS, ZH_DEFAULTS
    assert (en.min_words, en.max_words) == (50, 100_000)
    assert (en.min_mean_word_length, en.max_mean_word_length) == (3, 10)
    assert (en.max_hash_ratio, en.max_ellipsis_ratio) == (0.1, 0.1)
    assert (en.max_bullet_lines_ratio, en.max_ellipsis_lines_ratio) == (0.9, 0.3)
    assert (en.min_alpha_words_ratio, en.min_stopwords) == (0.8, 2)
    assert (en.max_dup_line_ratio, en.max_dup_para_ratio) == (0.30, 0.30)
    assert (en.max_dup_line_char_ratio, en.max_dup_para_char_ratio) == (0.20, 0.20)
    assert en.max_top_ngram_ratio == ((2, 0.20), (3, 0.18), (4, 0.16))
    assert [v for _, v in en.max_dup_ngram_ratio] == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    assert (en.min_terminal_punct_lines_ratio, en.max_short_lines_ratio) == (0.12, 0.67)
    assert (en.fineweb_max_dup_line_char_ratio, en.max_newline_per_word) == (0.1, 0.3)
    assert en.c4_lorem_ipsum and not zh.c4_lorem_ipsum
    assert (en.c4_max_word_length, en.c4_min_words_per_line, en.c4_min_sentences) == (1000, 3, 5)
    assert zh.c4_min_sentences is None and not zh.c4_curly_bracket

    assert (zh.min_chars, zh.min_mean_line_length, zh.min_cjk_ratio) == (200, 10, 0.30)
    assert (zh.min_mean_word_length, zh.max_mean_word_length) == (1, 5)
    assert (zh.min_alpha_words_ratio, zh.min_stopwords) == (0.735, 2)
    assert zh.max_dup_line_ratio == 0.287
    assert zh.max_top_ngram_ratio == ((2, 0.256), (3, 0.201), (4, 0.171))
    assert [v for _, v in zh.max_dup_ngram_ratio] == [0.198, 0.182, 0.167, 0.154, 0.14, 0.127]
    assert zh.min_terminal_punct_lines_ratio == 0.106
    assert zh.max_short_lines_ratio is None and zh.min_words is None
    assert (zh.fineweb_max_dup_line_char_ratio, zh.max_newline_per_word) == (0.1, 0.178)


def test_thresholds_are_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EN_DEFAULTS.min_words = 10  # type: ignore[misc]
    with pytest.raises(ValueError):
        QualityThresholds(max_dup_ngram_ratio=((11, 0.1),))
    with pytest.raises(ValueError, match="list of strings"):
        QualityThresholds(c4_policy_phrases="cookies")  # type: ignore[arg-type]


def test_loader_turns_toml_values_into_switches_phrases_and_pairs(tmp_path) -> None:
    from lmops.data.standard import resolve

    user = tmp_path / "p.toml"
    user.write_text(
        "[quality.en]\nc4_javascript = false\nmin_words = false\n"
        'c4_policy_phrases = ["use cookies"]\nmax_top_ngram_ratio = [[2, 0.5]]\n'
    )
    th = resolve("v1", str(user)).thresholds_for("en")
    assert th.c4_javascript is False and th.min_words is None
    assert th.c4_policy_phrases == ("use cookies",)
    assert th.max_top_ngram_ratio == ((2, 0.5),)


def test_thresholds_for_language_fallbacks() -> None:
    assert thresholds_for("en") is EN_DEFAULTS
    assert thresholds_for("en-US") is EN_DEFAULTS
    assert thresholds_for("zh") is ZH_DEFAULTS
    assert thresholds_for("zh_Hans") is ZH_DEFAULTS
    assert thresholds_for("de") is OTHER_DEFAULTS
    assert OTHER_DEFAULTS.min_stopwords is None
    assert thresholds_for("th") is UNSEGMENTED_DEFAULTS
    assert UNSEGMENTED_DEFAULTS.min_words is None
    assert UNSEGMENTED_DEFAULTS.max_top_ngram_ratio == ()


# --------------------------------------------------------------------------- signals


def test_signals_are_pure_floats_with_the_same_keys_for_all_languages() -> None:
    en = quality_signals(EN_TEXT, "en")
    zh = quality_signals(ZH_TEXT, "zh")
    assert en == quality_signals(EN_TEXT, "en")
    assert set(en) == set(zh)
    assert all(isinstance(v, float) for v in en.values())
    for key in ("top_2gram", "top_4gram", "dup_5gram", "dup_10gram", "cjk_ratio"):
        assert key in en


def test_signal_values_on_a_known_document() -> None:
    s = quality_signals(EN_TEXT, "en")
    assert s["n_lines"] == 2
    assert 3 < s["mean_word_length"] < 6
    assert s["alpha_words_ratio"] == 1.0
    assert s["stopword_count"] >= 10
    assert s["terminal_punct_lines_ratio"] == 1.0
    assert s["dup_line_ratio"] == s["dup_5gram"] == s["cjk_ratio"] == 0.0

    z = quality_signals(ZH_TEXT, "zh")
    assert z["cjk_ratio"] > 0.8
    assert 1 < z["mean_word_length"] < 3  # jieba words, not characters
    assert z["stopword_count"] >= 2
    assert z["n_chars"] > 200


def test_repetition_signals_count_characters_of_repeats() -> None:
    s = quality_signals("alpha beta\nalpha beta\ngamma delta", "en")
    assert s["dup_line_ratio"] == pytest.approx(1 / 3)
    # One duplicated line of 10 chars over 31 non-newline characters.
    assert s["dup_line_char_ratio"] == pytest.approx(10 / 31)
    # "a b c d e" repeated: the second 5-gram occurrence is the duplicate.
    t = quality_signals("a b c d e a b c d e", "en")
    assert t["dup_5gram"] == pytest.approx(5 / 19)
    assert t["dup_6gram"] == 0.0


def _datatrove_top(words: list[str], n: int) -> int:
    """Reference: datatrove's find_top_duplicate over space-joined n-grams."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _datatrove_dup(words: list[str], n: int) -> int:
    """Reference: datatrove's find_all_duplicate (scan, skip past each repeat)."""
    seen: set[str] = set()
    total = idx = 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in seen:
            total += len(gram)
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ngram_signals_match_the_datatrove_reference(seed: int) -> None:
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"][: 3 + seed]
    phrase = "the same twelve words appear twice in this text so ten grams repeat"
    text = " ".join(rng.choice(vocab) for _ in range(200))
    text = f"{text} {phrase} {text[::-1]} {phrase}"
    words = text.split()
    s = quality_signals(text, "en")
    for n in (2, 3, 4):
        assert s[f"top_{n}gram"] == pytest.approx(_datatrove_top(words, n) / len(text))
    for n in range(5, 11):
        assert s[f"dup_{n}gram"] == pytest.approx(_datatrove_dup(words, n) / len(text))
    assert s["dup_10gram"] > 0


def test_empty_document() -> None:
    s = quality_signals("", "en")
    assert s["n_words"] == 0 and s["hash_ratio"] == 0.0
    assert quality_decision(s, "en") == (False, "empty:n_chars")
    assert decide(" \n\n ", "ja") == (False, "empty:n_chars")


# --------------------------------------------------------------------------- English


def test_normal_english_paragraphs_pass() -> None:
    assert decide(EN_TEXT, "en") == (True, None)


def test_keyword_spam_fails_on_ngram_repetition() -> None:
    spam = "buy the best cheap shoes online with free shipping and fast delivery " * 30
    assert decide(spam, "en") == (False, "gopher_repetition:top_4gram")


def test_spam_without_stopwords_fails_gopher_quality() -> None:
    spam = " ".join(["cheap shoes sale discount"] * 60)
    assert decide(spam, "en") == (False, "gopher_quality:stopword_count")


def test_repeated_lines_fail() -> None:
    line = "Click here to subscribe to our newsletter for the latest updates."
    doc = "\n".join([line] * 20 + EN_TEXT.split("\n\n"))
    assert decide(doc, "en") == (False, "gopher_repetition:dup_line_ratio")


def test_too_short_and_too_long_words() -> None:
    assert decide("The cat sat on the mat.", "en") == (False, "gopher_quality:n_words")
    long_words = " ".join(["the"] * 5 + ["internationalisation"] * 80)
    assert decide(long_words, "en") == (False, "gopher_quality:mean_word_length")


def test_hashtags_and_symbols() -> None:
    tags = EN_TEXT + " " + " ".join(f"#tag{i}" for i in range(40))
    assert decide(tags, "en") == (False, "gopher_quality:hash_ratio")
    numbers = EN_TEXT + " " + " ".join(str(1000 + i) for i in range(60))
    assert decide(numbers, "en") == (False, "gopher_quality:alpha_words_ratio")


def test_lorem_ipsum_is_a_c4_reason() -> None:
    doc = EN_TEXT + "\n\nLorem ipsum dolor sit amet, consectetur adipiscing elit."
    assert decide(doc, "en") == (False, "c4:lorem_ipsum")


def test_braces_drop_web_text_but_not_documentation() -> None:
    doc = EN_TEXT + "\n\nIn the example the function body is written as { return the value; }."
    assert decide(doc, "en") == (False, "c4:curly_bracket")
    docs = resolve("v1", "docs").thresholds_for("en")
    assert quality_decision(quality_signals(doc, "en", docs), "en", docs) == (True, None)


def test_too_few_sentences_is_a_c4_reason() -> None:
    # Two paragraphs of five sentences pass; dropping the last three leaves two.
    assert decide(EN_TEXT, "en") == (True, None)
    two = EN_TEXT.split("\n\n")[0]
    s = quality_signals(two, "en", dataclasses.replace(EN_DEFAULTS, min_words=10))
    assert s["too_few_sentences"] == 1.0
    assert quality_decision(s, "en", dataclasses.replace(EN_DEFAULTS, min_words=10)) == (
        False,
        "c4:too_few_sentences",
    )


def test_terminal_punctuation_only_applies_to_multiline_documents() -> None:
    sentences = EN_TEXT.replace("\n\n", " ").split(". ")
    multi = "\n".join(s.rstrip(".") for s in sentences)
    assert quality_signals(multi, "en")["fineweb_n_lines"] > 1
    assert decide(multi, "en") == (False, "fineweb:terminal_punct_lines_ratio")
    # Without full stops a single line is one sentence: C4 drops it, FineWeb would not.
    single = " ".join(s.rstrip(".") for s in sentences)
    assert decide(single, "en") == (False, "c4:too_few_sentences")
    no_c4 = dataclasses.replace(EN_DEFAULTS, c4_min_sentences=None)
    s = quality_signals(single, "en", no_c4)
    assert s["terminal_punct_lines_ratio"] == 0.0
    assert quality_decision(s, "en", no_c4) == (True, None)


def test_short_lines_fail_fineweb() -> None:
    words = EN_TEXT.replace("\n\n", " ").split()
    lines = [" ".join(words[i : i + 3]) + "." for i in range(0, len(words), 3)]
    assert decide("\n".join(lines), "en") == (False, "fineweb:short_lines_ratio")


def test_first_failing_rule_wins_in_a_stable_order() -> None:
    s = quality_signals(EN_TEXT, "en")
    s.update(mean_word_length=20.0, hash_ratio=0.5, dup_line_ratio=0.9)
    assert quality_decision(s, "en") == (False, "gopher_quality:mean_word_length")
    s["mean_word_length"] = 5.0
    assert quality_decision(s, "en") == (False, "gopher_quality:hash_ratio")
    s["hash_ratio"] = 0.0
    assert quality_decision(s, "en") == (False, "gopher_repetition:dup_line_ratio")


def test_custom_thresholds() -> None:
    # Tiny documents trip the top-2-gram share (one 2-gram is 20% of 44 chars) too.
    relaxed = dataclasses.replace(
        EN_DEFAULTS, min_words=3, max_top_ngram_ratio=(), c4_min_sentences=None
    )
    s = quality_signals("The quick brown fox jumps over the lazy dog.", "en")
    assert quality_decision(s, "en") == (False, "gopher_quality:n_words")
    assert quality_decision(s, "en", relaxed) == (True, None)
    assert quality_decision(s, "en", QualityThresholds()) == (True, None)


# --------------------------------------------------------------------------- Chinese


def test_chinese_prose_passes_chinese_rules_but_not_english_ones() -> None:
    assert decide(ZH_TEXT, "zh") == (True, None)
    ok, reason = decide(ZH_TEXT, "en")
    assert not ok and reason == "gopher_quality:n_words"


def test_english_text_fails_the_chinese_cjk_rule() -> None:
    assert decide(EN_TEXT * 2, "zh") == (False, "chinesewebtext:cjk_ratio")


def test_chinese_minimum_length_is_configurable() -> None:
    short = ZH_TEXT.split("\n")[0]  # one paragraph, under 200 characters
    assert decide(short, "zh") == (False, "chinesewebtext:n_chars")
    relaxed = dataclasses.replace(ZH_DEFAULTS, min_chars=50)
    assert quality_decision(quality_signals(short, "zh"), "zh", relaxed) == (True, None)


def test_chinese_repeated_lines_fail() -> None:
    ad = "欢迎关注我们的公众号，获取更多最新的优惠信息和活动。"
    doc = "\n".join([ad] * 10 + ZH_TEXT.split("\n"))
    assert decide(doc, "zh") == (False, "gopher_repetition:dup_line_ratio")


def test_chinese_terminal_punctuation_rule() -> None:
    no_stops = "\n".join(line.replace("。", "，") for line in ZH_TEXT.split("\n"))
    assert decide(no_stops, "zh") == (False, "fineweb:terminal_punct_lines_ratio")
    # A single paragraph is exempt, and there is no short-line rule for Chinese.
    assert decide(no_stops.replace("\n", ""), "zh") == (True, None)


def test_chinese_short_lines_are_not_a_reason() -> None:
    poem = "\n".join(["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"] + ZH_TEXT.split("\n"))
    assert quality_signals(poem, "zh")["short_lines_ratio"] > 0
    assert decide(poem, "zh") == (True, None)


# --------------------------------------------------------------------------- others


def test_other_languages_skip_the_english_stopword_rule() -> None:
    fr = (
        "La Révolution française est une période de bouleversements politiques et sociaux "
        "en France. Elle commence en mai quand les états généraux se réunissent à "
        "Versailles pour discuter de la crise financière du royaume. Très vite, les "
        "députés du tiers état proclament une assemblée nationale et exigent une "
        "constitution écrite. Les paysans des campagnes, inquiets pour leurs récoltes, "
        "attaquent parfois les châteaux des seigneurs locaux pendant tout un été agité."
    )
    assert quality_signals(fr, "fr")["stopword_count"] < 2
    assert decide(fr, "fr") == (True, None)
    assert decide(fr, "en") == (False, "gopher_quality:stopword_count")


def test_unsegmented_languages_keep_only_line_rules() -> None:
    ja = "今日はとても良い天気ですね。公園まで散歩に行きましょう。\n" * 1
    assert decide(ja, "ja") == (True, None)  # would fail the English word-count rule
    assert decide(ja, "en")[1] == "gopher_quality:n_words"
    repeated = "\n".join(["毎日更新中！最新情報はこちらから。"] * 5 + [ja])
    assert decide(repeated, "ja") == (False, "gopher_repetition:dup_line_ratio")
