"""Offline language identification (lingua, restricted set, Han fast path)."""

from __future__ import annotations

import pytest

from lmops.data.langid import MAX_CHARS, UNKNOWN, detect_language, detect_languages

SAMPLES = {
    "en": "The history of the printing press is closely tied to the spread of literacy.",
    "zh": "自然语言处理是人工智能领域中的一个重要方向，它研究如何让计算机理解人类的语言。",
    "fr": "La Révolution française commence quand les états généraux se réunissent à Versailles.",
    "de": "Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald.",
    "ja": "今日はとても良い天気ですね。公園まで散歩に行きましょう。",
    "ko": "안녕하세요, 만나서 정말 반갑습니다. 오늘 날씨가 좋네요.",
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_detects_language(lang: str) -> None:
    code, conf = detect_language(SAMPLES[lang])
    assert code == lang
    assert 0.5 < conf <= 1.0


def test_han_text_with_latin_terms_uses_the_fast_path() -> None:
    code, conf = detect_language("我们使用Python和PyTorch训练了一个新的语言模型，效果非常好。")
    assert code == "zh" and conf > 0.5


def test_no_letters_is_unknown() -> None:
    assert detect_language("") == (UNKNOWN, 0.0)
    assert detect_language("12345 !!! 3.14 --") == (UNKNOWN, 0.0)


def test_only_the_head_of_a_long_document_is_used() -> None:
    doc = SAMPLES["fr"] + " " + SAMPLES["fr"] * (MAX_CHARS // 50) + SAMPLES["en"] * 200
    assert detect_language(doc)[0] == "fr"


@pytest.mark.parametrize("parallel", [False, True])
def test_batch_matches_single(parallel: bool) -> None:
    texts = [SAMPLES[k] for k in sorted(SAMPLES)] + [""]
    batch = detect_languages(texts, parallel=parallel)
    assert [code for code, _ in batch] == sorted(SAMPLES) + [UNKNOWN]
    for (code, conf), text in zip(batch, texts, strict=True):
        single_code, single_conf = detect_language(text)
        assert code == single_code
        assert conf == pytest.approx(single_conf)
