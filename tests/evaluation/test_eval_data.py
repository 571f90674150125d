"""The evaluation set of a dataset version: held out, balanced, with planted canaries."""

import pytest

from conftest import REPO
from lmops.config import DataConfig
from lmops.data.catalog import iter_texts
from lmops.data.ingest import ingest
from lmops.data.tokenize import is_validation
from lmops.errors import LmopsError
from lmops.evaluation.canaries import write_canary_file
from lmops.evaluation.eval_data import load_eval_data

VAL = 0.2


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    """The bilingual sample plus 12 planted canaries, ingested with the real standard."""
    root = tmp_path_factory.mktemp("evalset")
    canaries = write_canary_file(root / "src", 12, seed=7)
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    cfg = DataConfig(quality_overrides={"en": {"min_words": 20}, "zh": {"min_chars": 100}})
    return ingest([str(src), str(canaries)], cfg, root / "datasets", data_docs=False).path


def test_held_out_is_exactly_the_validation_split(version):
    data = load_eval_data(version, VAL, 10_000, 10_000)
    val = {h for h, _ in iter_texts(version, lambda h: is_validation(h, VAL))}
    assert {d.doc_hash for d in data.held_out} <= val
    assert not {d.doc_hash for d in data.train_sample} & val
    assert len(val) - 12 <= len(data.held_out) <= len(val)  # canaries are never held out


def test_small_caps_still_hold_every_language(version):
    data = load_eval_data(version, VAL, 6, 6)
    assert {d.lang for d in data.held_out} == {"en", "zh"}
    assert {d.lang for d in data.train_sample} == {"en", "zh"}


def test_planted_canaries_that_were_trained_on_are_probed(version):
    data = load_eval_data(version, VAL, 100, 100)
    assert 0 < len(data.canaries) <= 12
    for c in data.canaries:
        assert c.secret not in " ".join(d.text for d in data.held_out)
        assert not c.id.startswith("ds-")


def test_same_version_same_set_and_id(version):
    a, b = load_eval_data(version, VAL, 20, 8), load_eval_data(version, VAL, 20, 8)
    assert a == b
    assert load_eval_data(version, VAL, 21, 8).eval_set_id != a.eval_set_id


def test_missing_version_is_a_clear_error(tmp_path):
    with pytest.raises(LmopsError, match="is not in"):
        load_eval_data(tmp_path / "ds-nope", VAL, 10, 10)
