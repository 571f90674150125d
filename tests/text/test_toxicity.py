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


def _package():
    from lmops.text.toxicity import _profanity_package

    return _profanity_package()


def _fuzz_texts() -> list[str]:
    """Words of the vocabulary, stop words, single letters, digits, underscores, the
    separator spelled as text, accents, CJK, apostrophes and symbols between them."""
    import random

    rng = random.Random(7)
    pieces = [*list(_package().vectorizer.vocabulary_)[:300], "the", "and", "a", "I", "x1"]
    pieces += ["_", "__init__", "SEP", "sep", "Sep", "café", "naïve", "中文", "don't", "İstanbul"]
    pieces += ["fuck", "shit", "idiot", "stupid", "damn"]
    glue = [" ", "  ", ", ", ".", "-", "'", "\t", "/", "(", ")", "", "…"]
    texts = [
        "".join(
            (rng.choice(pieces).upper() if rng.random() < 0.1 else rng.choice(pieces))
            + rng.choice(glue)
            for _ in range(rng.randrange(0, 40))
        )
        for _ in range(300)
    ]
    return texts + ["", "   ", "a", CLEAN_EN, PROFANE_EN, "SEP SEP", "x SEP y"]


def test_fast_tfidf_rows_equal_the_vectorizers_own() -> None:
    import numpy as np

    from lmops.text.toxicity import _model_arrays, _tfidf_rows

    arrays = _model_arrays(_package())
    assert arrays is not None  # the wheel's model is the plain kind
    texts = _fuzz_texts()
    expected = _package().vectorizer.transform(texts)
    got = _tfidf_rows(arrays["words"].tolist(), arrays["idf"])(texts)
    assert got.shape == expected.shape
    assert np.abs((got - expected).toarray()).max() < 1e-12
    assert (got.getnnz(axis=1) == expected.getnnz(axis=1)).all()


def test_scores_without_sklearn_equal_the_packages_own() -> None:
    import numpy as np

    from lmops.text.toxicity import _linear_model, _model_arrays

    package = _package()
    texts = _fuzz_texts()
    expected = package.model.predict_proba(package.vectorizer.transform(texts))[:, 1]
    got = _linear_model(_model_arrays(package))(texts)
    assert np.abs(got - expected).max() < 1e-12
    assert expected.max() > 0.9 and expected.min() < 0.1  # both ends are exercised


def test_a_model_of_another_shape_is_not_taken_apart() -> None:
    from types import SimpleNamespace

    from sklearn.base import clone

    from lmops.text.toxicity import _model_arrays

    package = _package()
    bigrams = clone(package.vectorizer).set_params(ngram_range=(1, 2))
    bigrams.vocabulary_ = package.vectorizer.vocabulary_
    assert _model_arrays(SimpleNamespace(vectorizer=bigrams, model=package.model)) is None
    other = SimpleNamespace(vectorizer=package.vectorizer, model=package.model.estimator)
    assert _model_arrays(other) is None


def test_the_model_arrays_are_cached_and_later_processes_skip_sklearn(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from lmops.text.toxicity import toxicity_scores\n"
        "scores = toxicity_scores(sys.argv[1:], 'en')\n"
        "print(json.dumps({'scores': scores, 'sklearn': 'sklearn' in sys.modules}))\n"
    )
    env = {**os.environ, "LMOPS_CACHE": str(tmp_path)}

    def score() -> dict:
        args = [sys.executable, "-c", code, CLEAN_EN, PROFANE_EN]
        proc = subprocess.run(args, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    first = score()
    assert first["sklearn"]  # the first process takes the arrays from the pickles
    assert [p.name for p in tmp_path.iterdir()][0].startswith("profanity-check-")
    second = score()
    assert not second["sklearn"]
    assert second["scores"] == first["scores"]
    assert second["scores"][1] > TOXICITY_THRESHOLD > second["scores"][0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other arrays"])
def test_a_damaged_cache_file_is_made_again(tmp_path, monkeypatch, damage) -> None:
    import numpy as np

    from lmops.text import toxicity

    monkeypatch.setenv("LMOPS_CACHE", str(tmp_path))
    toxicity._cached_model()  # writes the file
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        np.savez(path.open("wb"), words=np.array(["x"]))
    predict = toxicity._cached_model()
    assert predict is not None
    assert predict([PROFANE_EN])[0] > TOXICITY_THRESHOLD
    assert path.read_bytes() == good
