"""MinHash-LSH near-duplicate index: detection, determinism, persistence."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from lmops.data.near_dedup import (
    NUM_PERM,
    SEED,
    NearDedupIndex,
    _affine32_permutations,
    shingle_hashes,
)

_rng = random.Random(1234)
_VOCAB = sorted(
    {
        "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(2, 9)))
        for _ in range(4000)
    }
)


def random_doc(seed: int, n_words: int = 200) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(n_words))


def change_one_word(doc: str, position: int = 100) -> str:
    words = doc.split()
    words[position] = "CHANGED"
    return " ".join(words)


ZH_DOC = (
    "自然语言处理是人工智能领域中的一个重要方向，它研究如何让计算机理解和生成人类的语言。"
    "早在上世纪五十年代，研究人员就开始尝试用规则的方法进行机器翻译，但效果一直不太理想。"
    "随着互联网的普及，大量的文本数据为统计方法提供了基础。研究者们发现，只要有足够多的语料，"
    "模型就可以从数据中自动学习语言的规律，而不必依赖人工编写的规则。"
)


def test_parameters() -> None:
    index = NearDedupIndex()
    assert (index.bands, index.rows, index.num_perm) == (14, 8, 112) and NUM_PERM == 112
    assert 0.7 < index.threshold < 0.73


def test_one_changed_word_is_a_near_duplicate_and_unrelated_is_not() -> None:
    index = NearDedupIndex()
    doc = random_doc(1)
    assert index.check_and_add("doc-1", doc, "en") is None
    assert index.check_and_add("doc-1-edited", change_one_word(doc), "en") == "doc-1"
    assert index.check_and_add("doc-2", random_doc(2), "en") is None
    assert len(index) == 2  # the duplicate was not added
    assert "doc-1-edited" not in index


def test_punctuation_and_case_do_not_hide_a_duplicate() -> None:
    index = NearDedupIndex()
    doc = random_doc(3)
    index.add("a", index.minhash(doc, "en"))
    noisy = doc.upper().replace(" ", " , ", 5)
    assert index.query(index.minhash(noisy, "en")) == ["a"]


def test_chinese_uses_character_shingles() -> None:
    index = NearDedupIndex()
    assert index.check_and_add("zh-1", ZH_DOC, "zh") is None
    edited = ZH_DOC.replace("重要", "关键", 1)
    assert index.check_and_add("zh-2", edited, "zh") == "zh-1"
    # A wrong language label does not matter: the CJK share picks character shingles.
    assert index.check_and_add("zh-3", edited, "en") == "zh-1"
    assert (
        shingle_hashes(ZH_DOC, "zh").size == len("".join(ch for ch in ZH_DOC if ch.isalnum())) - 4
    )


def test_minhash_is_deterministic_and_matches_datasketch() -> None:
    doc = random_doc(4)
    a = NearDedupIndex().minhash(doc, "en")
    b = NearDedupIndex().minhash(doc, "en")
    assert np.array_equal(a.hashvalues, b.hashvalues)
    reference = MinHash(num_perm=NUM_PERM, seed=a.seed, hashfunc=int)
    reference.update_batch([int(h) for h in shingle_hashes(doc, "en")])
    assert np.array_equal(reference.hashvalues, a.hashvalues)
    assert a.jaccard(NearDedupIndex().minhash(change_one_word(doc), "en")) > 0.8


def test_query_orders_by_similarity_and_filters() -> None:
    index = NearDedupIndex()
    doc = random_doc(5)
    index.add("exact", index.minhash(doc, "en"))
    index.add("edited", index.minhash(change_one_word(doc, 10), "en"))
    assert index.query(index.minhash(doc, "en")) == ["exact", "edited"]
    assert index.query(index.minhash(doc, "en"), min_jaccard=1.0) == ["exact"]


def test_duplicate_keys_and_foreign_minhashes_are_rejected() -> None:
    index = NearDedupIndex()
    mh = index.minhash(random_doc(6), "en")
    index.add("k", mh)
    with pytest.raises(ValueError):
        index.add("k", mh)
    with pytest.raises(ValueError):
        index.query(MinHash(num_perm=128))


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = NearDedupIndex()
    docs = {f"v1-{i}": random_doc(100 + i) for i in range(20)}
    for key, doc in docs.items():
        assert index.check_and_add(key, doc, "en") is None
    path = tmp_path / "near_dedup.npz"
    index.save(path)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["near_dedup.npz"]  # no tmp file left

    loaded = NearDedupIndex.load(path)
    assert len(loaded) == 20 and "v1-7" in loaded
    # A later dataset version is deduped against the earlier one.
    assert loaded.check_and_add("v2-0", change_one_word(docs["v1-7"]), "en") == "v1-7"
    assert loaded.check_and_add("v2-1", random_doc(999), "en") is None
    for key in docs:
        assert loaded.query(index.minhash(docs[key], "en"))[0] == key

    # Overwriting is atomic and an empty index round-trips too.
    NearDedupIndex().save(path)
    assert len(NearDedupIndex.load(path)) == 0


@pytest.mark.parametrize(("num_perm", "seed"), [(NUM_PERM, SEED), (1, 0), (64, 7), (128, 42)])
def test_permutations_equal_datasketch(num_perm: int, seed: int) -> None:
    a, b = _affine32_permutations(num_perm, seed)
    ref_a, ref_b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    assert a.dtype == b.dtype == np.uint32
    assert np.array_equal(a, ref_a) and np.array_equal(b, ref_b)


def test_signatures_do_not_import_datasketch() -> None:
    """The annotate stage (every ingest worker) must not pay for datasketch + scipy, and its
    signature bytes are datasketch's."""
    code = """
import sys
from lmops.data.signals import annotate_table
from lmops.data.near_dedup import NearDedupIndex, shingle_hashes
index = NearDedupIndex()
sig = index.signature(shingle_hashes("the quick brown fox jumps over the lazy dog", "en"))
assert sig.shape == (index.num_perm,), sig.shape
for mod in ("datasketch", "scipy.integrate"):
    assert mod not in sys.modules, mod
# A document annotate keeps gets its signature bytes, still without datasketch.
from lmops.data.signals import annotate_rows
from lmops.data.standard import resolve
kept = (
    "The committee met on Tuesday to review the budget for the coming year. Members agreed "
    "that the library needs more staff and a longer opening time. They also discussed the "
    "new bus route, which will stop near the school and the park. A final vote on the plan "
    "is expected next month, after the public has had a chance to comment.\\n"
    "Residents who want to share their views can write to the council or attend the open "
    "meeting. The chair thanked everyone for their work and closed the session after nine."
)
keys = ("id", "source", "license", "meta", "file", "record")
(row,) = annotate_rows([{**dict.fromkeys(keys, ""), "line": 0, "text": kept}], resolve("v1", "web"))
assert row["reason"] is None, row["reason"]
for mod in ("datasketch", "scipy.integrate"):
    assert mod not in sys.modules, mod
import numpy as np
assert row["minhash"] == index.minhash(kept, "en").hashvalues.astype(np.uint32).tobytes()
text = "one two three four five six seven eight nine ten"
assert index.check_and_add("a", text, "en") is None
assert index.check_and_add("b", text, "en") == "a"
assert "datasketch" in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
