"""`lmops run --config tiny` end to end: real Prefect, Ray Train, MLflow and transformers."""

import json

import mlflow
import pytest
from mlflow import MlflowClient


@pytest.fixture(scope="module")
def registry(tiny_run):
    home, _ = tiny_run
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    yield MlflowClient()


def test_version_has_staging_alias(registry):
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    assert str(mv.version) == "1"
    assert mv.tags["lmops.gate.staging"] == "passed"


def test_version_carries_lineage(registry, tiny_run):
    home, _ = tiny_run
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    ds = mv.tags["lmops.dataset_version"]
    assert ds.startswith("ds-") and (home / "datasets" / ds / "manifest.json").exists()
    assert mv.tags["lmops.mlflow_run"] == mv.run_id
    assert mv.tags["lmops.code_commit"]
    assert mv.tags["lmops.config"] == "tiny" and len(mv.tags["lmops.config_digest"]) == 16
    assert mv.tags["lmops.tokenizer"].startswith("tok-")
    # The standard the dataset passed: tiny's profile file, as the manifest records it.
    std = json.loads((home / "datasets" / ds / "manifest.json").read_text())["standard"]
    assert mv.tags["lmops.data_profile"] == std["profile"] == "sample-corpus (extends web)"
    assert mv.tags["lmops.data_standard"] == f"v1 {std['version']}"
    assert mv.tags["lmops.standard_digest"] == std["digest"] and len(std["digest"]) == 16
    run = registry.get_run(mv.run_id)
    assert run.data.params["train.max_steps"] == "40"
    assert len(registry.get_metric_history(mv.run_id, "train/loss")) >= 2  # a loss curve
    assert run.inputs.dataset_inputs[0].dataset.digest == ds[3:]


def test_version_carries_verified_evidence(registry, tiny_run, monkeypatch):
    from model_registry.signed_evidence import verify_version

    monkeypatch.setenv("LMOPS_HOME", str(tiny_run[0]))  # its trust file lists the run's key
    from model_registry.verify import verify

    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    ev = verify_version("lmops-tiny", str(mv.version))  # signature, files in the store, tags
    report = verify("lmops-tiny@staging")  # and the signed move the gate made
    assert report.ok, report.checks
    assert ev.predicate["dataset_version"] == mv.tags["lmops.dataset_version"]
    assert ev.data_validation_passed is True and ev.predicate["code_commit"]
    for key in ("eval/perplexity", "eval/bits_per_byte", "safety/score", "bias/mean_abs_gap"):
        assert key in ev.metrics, sorted(ev.metrics)
    assert ev.eval_set.startswith("es-")
    assert mv.tags["eval.perplexity"] == f"{ev.metrics['eval/perplexity']:.6g}"


def test_metrics_belong_to_the_logged_model(registry):
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    from lmops.evaluation.loading import logged_model_id

    logged = registry.get_logged_model(logged_model_id(mv))
    names = {m.key for m in logged.metrics}
    assert {"eval/perplexity", "safety/toxicity_rate", "bias/mean_abs_gap"} <= names
    eval_set = mv.tags["lmops.eval_set"]
    assert all(m.dataset_name == eval_set for m in logged.metrics if m.key == "eval/perplexity")
    # Linked to the dataset version and the code commit, and to the run that trained it.
    for tag in ("lmops.dataset_version", "lmops.code_commit", "lmops.config_digest"):
        assert logged.tags[tag] == mv.tags[tag], tag
    assert logged.source_run_id == mv.run_id
    inputs = registry.get_run(mv.run_id).inputs.dataset_inputs
    (training,) = [d for d in inputs if d.dataset.name == mv.tags["lmops.dataset_version"]]
    assert {t.key: t.value for t in training.tags}["mlflow.data.context"] == "training"


def test_run_holds_tables_report_and_card(registry):
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    files = {f.path for f in registry.list_artifacts(mv.run_id, "eval")}
    for name in ("eval_samples", "safety_redteam", "bias_pairs", "eval_perplexity_by_lang"):
        assert f"eval/{name}.json" in files, files
    assert "eval/report.html" in files
    card = registry.get_model_version("lmops-tiny", mv.version).description
    assert not card.startswith("---") and mv.tags["lmops.dataset_version"] in card
    digest, profile = mv.tags["lmops.standard_digest"], mv.tags["lmops.data_profile"]
    assert f"(digest `{digest}`), profile `{profile}`." in card


def test_loads_from_staging_alias_and_generates(tiny_run, registry):
    pipe = mlflow.transformers.load_model("models:/lmops-tiny@staging")
    prompt = "The function returns"
    n_prompt = len(pipe.tokenizer(prompt)["input_ids"])
    out = pipe(prompt, max_new_tokens=5, do_sample=False, return_tensors=True)
    assert len(out[0]["generated_token_ids"]) > n_prompt


def test_pyfunc_flavour_generates(tiny_run, registry):
    model = mlflow.pyfunc.load_model("models:/lmops-tiny@staging")
    out = model.predict(["import os"], params={"max_new_tokens": 4})
    assert isinstance(out[0], str) and len(out[0]) > 0


def test_summary_printed_stage_by_stage(tiny_run):
    _, proc = tiny_run
    for stage in (
        "ingest + validate",
        "tokenize + train",
        "evaluate",
        "register + gate",
        "promoted to @staging",
        "lmops ui",
    ):
        assert stage in proc.stdout, proc.stdout


def test_quarantine_accounting_in_manifest(tiny_run):
    home, _ = tiny_run
    (version,) = [p for p in (home / "datasets").iterdir() if p.name.startswith("ds-")]
    counts = json.loads((version / "manifest.json").read_text())["counts"]
    assert counts["input"] == counts["accepted"] + counts["quarantined"]
    assert counts["quarantined"] > 0 and counts["reasons"]["dedup:exact"] >= 1


def test_unchanged_rerun_is_a_cache_hit(tiny_run, registry):
    from conftest import run_cli

    home, _ = tiny_run
    again = run_cli(["run", "--config", "tiny"], home)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "cache hit" in again.stdout and "training skipped" in again.stdout
    assert len(registry.search_model_versions("name = 'lmops-tiny'")) == 1


def test_run_status_is_finished_and_inputs_are_linked(registry):
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    run = registry.get_run(mv.run_id)
    assert run.info.status == "FINISHED"
    contexts = {
        i.dataset.name: {t.key: t.value for t in i.tags}.get("mlflow.data.context")
        for i in run.inputs.dataset_inputs
    }
    assert contexts[mv.tags["lmops.dataset_version"]] == "training"


def test_tokenizer_never_saw_the_held_out_documents(registry, tiny_run):
    from pathlib import Path

    from lmops.data.catalog import iter_texts
    from lmops.data.tokenize import is_validation
    from pipelines.run_config import load_run_config
    from pipelines.train import training_texts

    home, _ = tiny_run
    mv = registry.get_model_version_by_alias("lmops-tiny", "staging")
    ds = home / "datasets" / mv.tags["lmops.dataset_version"]
    vf = load_run_config("tiny").data.val_fraction
    everything = dict(iter_texts(ds))
    trained_on = dict(training_texts(ds, vf))
    held_out = {h for h in everything if is_validation(h, vf)}
    assert held_out and trained_on  # both sides exist
    assert not held_out & set(trained_on) and set(trained_on) | held_out == set(everything)
    (meta,) = [
        json.loads(p.read_text())
        for p in Path(home / "tokenizers").glob("*/lmops_tokenizer.json")
        if json.loads(p.read_text())["dataset_version"] == ds.name
    ]
    assert meta["split"] == f"train (val_fraction {vf})"
