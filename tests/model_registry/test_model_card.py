"""The model card describes the run's real data and evidence, in HF and display form."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from huggingface_hub import ModelCard

from lmops.config import DataConfig, RunConfig
from lmops.data.catalog import load_manifest
from lmops.data.ingest import ingest
from lmops.data.licenses import license_counts
from model_registry.card_inputs import CardInputs
from model_registry.model_card import CARD_ARTIFACT, DESCRIPTION_LIMIT, card_for_run, render_card

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from corpus_factory import good_doc, write_jsonl  # noqa: E402

METRICS = {
    "eval/perplexity": 17.25,
    "eval/perplexity_en": 17.25,
    "eval/bits_per_byte": 1.375,
    "eval/parameters": 98304.0,
    "safety/flagged_rate": 0.0,
    "bias/max_abs_gap": 0.0625,
}


@pytest.fixture(scope="module")
def user_version(tmp_path_factory):
    """A user's corpus, unlike the sample: CC-BY-4.0 field notes plus two broken lines."""
    tmp = tmp_path_factory.mktemp("user")
    rows = [{**good_doc(i), "license": "CC-BY-4.0", "source": "field-notes"} for i in range(40)]
    src = write_jsonl(tmp / "field_notes.jsonl", [*rows, '{"broken', '{"also broken'])
    rep = ingest([src], DataConfig(), tmp / "datasets", data_docs=False)
    return rep.path


def inputs(path: Path, **over) -> CardInputs:
    base = dict(
        model_name="field-notes-lm",
        intended_use="Autocomplete for the team's field notes.",
        manifest=load_manifest(path),
        license_counts=license_counts(path),
        metrics=METRICS,
        lineage={"lmops.dataset_version": path.name, "lmops.eval_set": f"{path.name}/tok-1"},
    )
    return CardInputs(**{**base, **over})


def front_matter(hf: str) -> dict:
    assert hf.startswith("---\n")
    return yaml.safe_load(hf.split("---\n")[1])


def section(card: str, title: str) -> str:
    return card.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_card_holds_the_user_corpus_version_licence_and_metrics(user_version):
    vid = user_version.name
    card = render_card(inputs(user_version))
    for text in (card.hf, card.display):
        assert vid in text and "CC-BY-4.0" in text and "`cc-by-4.0`" in text
        assert "Autocomplete for the team's field notes." in text
        assert "| eval/perplexity | 17.25 |" in text and "| bias/max_abs_gap | 0.0625 |" in text
        assert "accepted: 40; quarantined: 2" in text and "parse:malformed_json" in text
        for sample_only in ("apache-2.0", "PSF", "Python documentation", "bilingual", "zh"):
            assert sample_only not in text
    meta = front_matter(card.hf)
    assert meta["license"] == "cc-by-4.0" and meta["datasets"] == [vid]
    assert meta["language"] == ["en"]
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"]["name"] == f"{vid}/tok-1"
    values = {m["name"]: m["value"] for m in results["metrics"]}
    assert values == {
        "eval/perplexity": 17.25,
        "eval/perplexity_en": 17.25,
        "eval/bits_per_byte": 1.375,
    }
    assert ModelCard(card.hf).data.license == "cc-by-4.0"


def test_training_data_names_the_standard_profile_digest_and_overrides(user_version, tmp_path):
    m = load_manifest(user_version)
    std = m["standard"]
    card = render_card(inputs(user_version)).display
    standard = f"data standard `v1` {std['version']} (digest `{std['digest']}`)"
    assert f"{standard}, profile `web`." in card and "override" not in card
    # The same notes ingested under `short` by a config that raises one of its minimums.
    cfg = DataConfig(profile="short", quality_overrides={"en": {"min_words": 30}})
    rep = ingest([m["sources"][0]["path"]], cfg.from_config("notes", None), tmp_path, False)
    short = load_manifest(rep.path)["standard"]
    card = render_card(inputs(rep.path)).display
    assert f"(digest `{short['digest']}`), profile `short`." in card
    assert "- Run config override of the profile: `en.min_words 3 -> 30, from config notes`" in card
    # A manifest from before the standard was recorded says so.
    old = {k: v for k, v in m.items() if k not in ("standard", "standard_version")}
    card = render_card(inputs(user_version, manifest=old)).display
    assert "data standard not recorded, profile not recorded." in card


def test_display_card_has_no_front_matter_and_opens_with_a_heading(user_version):
    card = render_card(inputs(user_version))
    lines = card.display.splitlines()
    assert lines[0] == "# field-notes-lm"
    # A lone --- or === under a line of text is what turned the YAML into a heading.
    assert not any(line.strip() in ("---", "===") for line in lines)
    assert "| license | `cc-by-4.0` |" in card.display
    assert card.hf.endswith(card.display.split("\n\n", 2)[2])  # the same body


def test_mixed_and_missing_licences_are_other_with_the_breakdown(user_version):
    counts = {"CC-BY-4.0": 30, "MIT": 8, "unknown": 2}
    card = render_card(inputs(user_version, license_counts=counts))
    meta = front_matter(card.hf)
    assert meta["license"] == "other" and meta["license_name"]
    licence = section(card.display, "Licence")
    assert "| MIT | 8 | 20.0% |" in licence and "| unknown | 2 | 5.0% |" in licence
    assert "2 training documents state no licence" in section(
        card.display, "Bias, Risks, and Limitations"
    )


def test_limitations_are_written_from_the_evidence(user_version):
    def limits(metrics):
        card = render_card(inputs(user_version, metrics=metrics)).display
        return section(card, "Bias, Risks, and Limitations")

    risky = limits(
        {
            "eval/perplexity_en": 20.0,
            "eval/perplexity_zh": 60.0,
            "safety/flagged_rate": 0.4,
            "safety/flagged_rate_violence": 0.4,
            "safety/flagged_rate_hate": 0.0,
            "safety/memorisation_rate": 0.125,
            "bias/mean_abs_gap_gender": 0.2,
        }
    )
    assert "Perplexity on zh is 3.0× that on en" in risky
    assert "flagged 40.0% of completions (categories: violence 40.0%)" in risky
    assert "hate" not in risky
    assert "Memorisation rate 12.5%" in risky and "largest for gender (0.2)" in risky
    assert "Trained on 40 accepted documents" in risky and "98,304 parameters" not in risky

    calm = limits({"safety/flagged_rate": 0.0, "eval/parameters": 98304.0})
    assert "% of completions" not in calm and "flagged no completion" in calm
    assert "98,304 parameters" in calm and "Perplexity on" not in calm
    assert "No bias evaluation was recorded" in calm

    nothing = limits({})
    assert "No safety evaluation was recorded" in nothing
    assert "No bias evaluation was recorded" in nothing


def test_comparison_names_the_incumbent(user_version):
    cmp = {
        "incumbent": {"name": "field-notes-lm", "version": "7", "alias": "staging"},
        "eval_set": "ds-x/tok-1",
        "metrics": {"eval/perplexity": {"candidate": 17.25, "incumbent": 19.5}},
    }
    with_cmp = render_card(inputs(user_version, comparison=cmp)).display
    text = section(with_cmp, "Comparison with the incumbent")
    assert "version 7 (@staging)" in text and "| eval/perplexity | 17.25 | 19.5 | -2.25 |" in text
    without = render_card(inputs(user_version)).display
    assert "No comparison with an incumbent" in without and "version 7" not in without


def test_description_fits_mlflow_and_points_to_the_artifact(user_version):
    small = render_card(inputs(user_version))
    assert small.description == small.summary and CARD_ARTIFACT in small.summary
    assert "## Licence" in small.description and "## Training data" in small.description
    big = render_card(inputs(user_version, lineage={"lmops.notes": "x" * 6000}))
    assert len(big.summary) > DESCRIPTION_LIMIT >= len(big.description)
    assert "left out: Lineage" in big.description
    assert big.description.startswith("# field-notes-lm")
    assert "## Bias, Risks, and Limitations" in big.description


def test_card_for_run_reads_the_run_config_and_the_version_folder(
    user_version, tmp_path, monkeypatch
):
    # card_for_run looks the lineage's runs up in MLflow: a store of this test's own.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = RunConfig(registry={"model_name": "notes-lm", "intended_use": "Drafting notes."})
    ds = SimpleNamespace(path=str(user_version))
    samples = [{"strategy": "greedy", "prompt": "p", "completion": "c"}]
    ev = SimpleNamespace(
        metrics=METRICS,
        tables={"eval_samples": samples},
        comparison=None,
        eval_set_id="ds-x/tok-9",
        kind="causal",
    )
    card = card_for_run(config, ds, ev, {"lmops.mlflow_run": "run-1"}, version="12")
    assert front_matter(card.hf)["license"] == "cc-by-4.0" and user_version.name in card.hf
    assert "Drafting notes." in card.display and "| greedy | p | c |" in card.display
    assert "Held-out evaluation set `ds-x/tok-9`" in card.display
    assert 'load_model("models:/notes-lm/12")' in card.display
    assert "`models:/notes-lm@staging`" in card.display  # the default policy's alias
