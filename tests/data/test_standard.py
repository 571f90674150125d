"""The data standard: one TOML, profiles, a digest in the version id, failure messages."""

import json
import shutil
from pathlib import Path

import pytest
from corpus_factory import good_doc, write_jsonl
from short_corpus import SHORT_DOCS

from lmops.config import DataConfig
from lmops.data.ingest import ingest
from lmops.data.stage_hash import hash_sources, version_id_for
from lmops.data.standard import load_standard, profile_hint, resolve
from lmops.data.standard.loader import STANDARD_DIR
from lmops.errors import ConfigError, DataStandardError
from pipelines.cli.common import load_config
from pipelines.run_config import load_run_config


def vid(cfg: DataConfig, src) -> str:
    s = hash_sources([src])
    return version_id_for(load_standard(cfg), cfg, s.files, s.hashes)


def test_every_profile_resolves_to_its_own_digest_and_figures():
    web, docs, short = (resolve("v1", p) for p in ("web", "docs", "short"))
    assert len({web.digest, docs.digest, short.digest}) == 3
    assert resolve().digest == web.digest  # web is the default
    assert (web.code_blocks, docs.code_blocks) == ("keep", "drop")
    assert web.thresholds_for("en").min_words == 50
    assert docs.thresholds_for("en").min_terminal_punct_lines_ratio is None
    assert short.min_chars < web.min_chars
    # A profile changes only what it names: the Chinese stop words stay the base list.
    assert short.thresholds_for("zh").stopwords == web.thresholds_for("zh").stopwords


def test_version_id_hashes_thresholds_and_word_lists_but_not_the_split(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [good_doc(i) for i in range(5)])
    base = vid(DataConfig(), src)
    assert vid(DataConfig(val_fraction=0.2), src) == base
    assert vid(DataConfig(workers=1, batch_rows=50), src) == base
    # A threshold or a word list changed in a run config, a profile or a user profile.
    assert vid(DataConfig(quality_overrides={"en": {"min_words": 49}}), src) != base
    assert vid(DataConfig(quality_overrides={"en": {"stopwords": ["the"]}}), src) != base
    assert vid(DataConfig(profile="docs"), src) != base
    user = tmp_path / "mine.toml"
    user.write_text('extends = "web"\n[quality.zh]\nstopwords = ["的"]\n')
    assert vid(DataConfig(profile=str(user)), src) != base
    # An edited copy of the standard file itself: one figure in the base tables.
    copy = tmp_path / "v1.toml"
    text = (STANDARD_DIR / "v1.toml").read_text(encoding="utf-8")
    copy.write_text(text.replace("max_hash_ratio = 0.1", "max_hash_ratio = 0.11", 1))
    shutil.copy(STANDARD_DIR / "corpus_v1.json", tmp_path / "corpus_v1.json")
    assert vid(DataConfig(standard=str(copy)), src) != base
    copy.write_text(text)
    assert load_standard(DataConfig(standard=str(copy))).digest == resolve().digest


def test_user_profile_extends_a_named_one_and_bad_ones_fail_in_one_line(tmp_path):
    user = tmp_path / "headlines.toml"
    user.write_text('extends = "short"\ndescription = "news"\n[quality.en]\nmin_words = 4\n')
    std = resolve("v1", str(user))
    assert std.profile == "headlines (extends short)"
    assert std.thresholds_for("en").min_words == 4
    assert std.min_chars == resolve("v1", "short").min_chars
    user.write_text("[quality.en]\nmin_wordz = 4\n")
    with pytest.raises(ConfigError, match="unknown quality threshold 'min_wordz'"):
        resolve("v1", str(user))
    # A TOML false or string where a number or flag belongs, not a silent 0 or True.
    user.write_text("[toxicity]\nthreshold = false\n")
    with pytest.raises(ConfigError, match="toxicity.threshold must be a number, not False"):
        resolve("v1", str(user))
    user.write_text('[pii]\nredact = "no"\n')
    with pytest.raises(ConfigError, match="pii.redact must be true or false, not 'no'"):
        resolve("v1", str(user))
    user.write_text('extends = "poetry"\n')
    with pytest.raises(ConfigError, match="does not define"):
        resolve("v1", str(user))
    with pytest.raises(ConfigError, match=r"unknown data profile 'blog'.*'docs', 'short', 'web'"):
        resolve("v1", "blog")


def test_profile_short_with_config_cpu_is_exactly_short():
    # `lmops ingest DIR --profile short` (config cpu by default): cpu's own profile is
    # replaced, and nothing of cpu re-raises short's minimums.
    std = load_standard(load_config("cpu", None, "short").data)
    assert std.profile == "short" and std.overrides == ()
    assert std.thresholds_for("zh").min_chars == 8 and std.thresholds_for("en").min_words == 3
    assert std.digest == resolve("v1", "short").digest


def test_a_config_that_overrides_its_profile_says_so_and_gets_its_own_digest(tmp_path):
    mine = tmp_path / "poems.toml"
    mine.write_text(
        'name = "poems"\n[data]\nprofile = "short"\n'
        "quality_overrides = { zh = { min_chars = 100 } }\n"
    )
    std = load_standard(load_run_config(str(mine)).data)
    assert std.thresholds_for("zh").min_chars == 100  # applied, and recorded:
    assert std.overrides == ("zh.min_chars 8 -> 100, from config poems",)
    assert std.summary()["overrides"] == list(std.overrides)  # what the manifest keeps
    assert "zh.min_chars 8 -> 100, from config poems" in profile_hint(std.summary())
    assert std.digest != resolve("v1", "short").digest
    # Over the base tables: an English figure that other languages inherit is listed for
    # them too, and settings outside [quality] name their table.
    cfg = DataConfig(quality_overrides={"en": {"min_words": 20}}, min_chars=4, near_dedup=False)
    assert load_standard(cfg, origin="x").overrides == (
        "en.min_words 50 -> 20, from config x",
        "other.min_words 50 -> 20 (extends en), from config x",
        "length.min_chars 20 -> 4, from config x",
        "dedup.near true -> false, from config x",
    )
    # An override equal to what the profile sets changes nothing and records nothing.
    same = DataConfig(profile="short", quality_overrides={"zh": {"min_chars": 8}})
    assert load_standard(same).overrides == ()
    assert load_standard(same).digest == resolve("v1", "short").digest


def test_config_cpu_reads_its_profile_file_from_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout
    for name in ("cpu", "tiny"):
        std = load_standard(load_run_config(name).data)
        assert std.profile == "sample-corpus (extends web)"
        assert std.thresholds_for("en").min_words == 20
        assert std.thresholds_for("zh").min_chars == 100
    # The same rules as the overrides the profile file replaced: only the name differs.
    old = DataConfig(quality_overrides={"en": {"min_words": 20}, "zh": {"min_chars": 100}})
    assert {**std.resolved, "profile": "web"} == load_standard(old).resolved
    # The same relative path given on the command line is read from the working directory.
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "sample-corpus.toml").write_text('extends = "short"\n')
    given = load_config("cpu", None, "profiles/sample-corpus.toml")
    assert load_standard(given.data).profile == "sample-corpus (extends short)"


# Short, but not text: the short profile must still quarantine these.
JUNK = {
    "j0": "$$$ ### 100% !!! 555-0199 >>> *** ===",
    "j1": "buy now cheap buy now cheap buy now cheap buy now cheap buy now cheap buy now",
    "j2": "点击这里点击这里点击这里",
}


def _short_source(tmp_path: Path) -> str:
    rows = [{"id": f"s{i}", "text": t} for i, t in enumerate(SHORT_DOCS)]
    rows += [{"id": k, "text": t} for k, t in JUNK.items()]
    return write_jsonl(tmp_path / "short.jsonl", rows)


def test_short_texts_pass_under_short_and_the_web_failure_names_the_profiles(tmp_path):
    src = _short_source(tmp_path)
    with pytest.raises(DataStandardError) as e:
        ingest([src], DataConfig(), tmp_path / "ds", data_docs=False)
    msg = str(e.value)
    assert "Profile used: 'web'" in msg and "docs, short, web" in msg and "--profile" in msg
    rep = ingest([src], DataConfig(profile="short"), tmp_path / "ds", data_docs=False)
    assert rep.accepted >= 0.9 * len(SHORT_DOCS), rep.reasons
    assert rep.langs["zh"] >= 10 and rep.langs["en"] >= 10
    m = json.loads((rep.path / "manifest.json").read_text())
    assert m["standard"]["profile"] == "short"
    assert m["standard"]["digest"] == resolve("v1", "short").digest
    import pyarrow.parquet as pq

    q = pq.read_table(sorted(rep.path.glob("quarantine-*.parquet"))).to_pylist()
    assert {json.loads(r["record"])["id"] for r in q} >= set(JUNK), q
