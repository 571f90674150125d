"""`lmops train --objective mlm|sft --from MODEL_URI`: an MLM encoder reports masked-token
accuracy and is registered; supervised fine-tuning with LoRA starts from a registered
parent, records it in lineage and registers the merged model; bad starting points and
worker counts fail in one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import REPO, assert_clean_error, run_cli

FAST = ["--config", "tiny", "--set", "train.max_steps=20", "--set", "train.log_every=5"]
# The whole suite and its gate are tested elsewhere; here one scorer per kind keeps it short.
CAUSAL = [*FAST, "--set", 'eval.scorers=["perplexity"]']


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home with the sample corpus published and a causal parent registered (v1)."""
    home = tmp_path_factory.mktemp("objectives") / ".lmops"
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    ingested = run_cli(["ingest", str(src), "--config", "tiny"], home)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    parent = run_cli(["train", *CAUSAL], home)
    assert parent.returncode in (0, 4), parent.stdout[-3000:] + parent.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    return home


def _sft_records(path, n=240):
    """Prompt/response pairs in English and Chinese, with answers a model can learn."""
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            if i % 2:
                prompt = f"请计算{a}加{b}等于多少，并给出答案。"
                rec = {"prompt": prompt, "response": f"{a}加{b}等于{a + b}，答案是{a + b}。"}
            else:
                prompt = f"What is {a} plus {b}? Answer in one sentence."
                rec = {"prompt": prompt, "response": f"{a} plus {b} is {a + b}."}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def test_lora_fine_tuning_starts_from_a_registered_parent(home, tmp_path):
    src = tmp_path / "sft.jsonl"
    _sft_records(src)
    # Arithmetic templates are near-duplicates and short by web standards.
    loose = ["--set", "data.quality_rules=false", "--set", "data.near_dedup=false"]
    ingested = run_cli(["ingest", str(src), "--config", "tiny", *loose], home)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    ds = next(w for w in ingested.stdout.split() if w.startswith("ds-"))

    args = [
        "train",
        *CAUSAL,
        "--dataset",
        ds,
        "--objective",
        "sft",
        "--from",
        "models:/lmops-tiny/1",
    ]
    tuned = run_cli([*args, "--set", "train.lora.r=8"], home)
    assert tuned.returncode in (0, 4), tuned.stdout[-3000:] + tuned.stderr[-3000:]
    client = MlflowClient()
    parent = client.get_model_version("lmops-tiny", "1")
    (mv,) = [v for v in client.search_model_versions("name = 'lmops-tiny'")
             if v.tags.get("lmops.objective") == "sft"]  # fmt: skip
    assert mv.tags["lmops.parent_model"] == f"lmops-tiny/{parent.version}"
    assert mv.tags["lmops.lora"].startswith("merged into the parent; r=8, alpha=16")
    run = client.get_run(mv.run_id)
    assert run.data.tags["lmops.parent_model"] == f"lmops-tiny/{parent.version}"
    assert run.data.params["train.init_from"] == "models:/lmops-tiny/1"

    # Registered merged: plain transformers weights of the parent's shape, not an adapter,
    # with the chat template it was trained on.
    from lmops.training.objectives.sft import SFT_CHAT_TEMPLATE

    folder = mlflow.artifacts.download_artifacts(f"models:/lmops-tiny/{mv.version}")
    files = {p.name for p in Path(folder).rglob("*")}
    assert "adapter_config.json" not in files and "model.safetensors" in files
    parts = mlflow.transformers.load_model(
        f"models:/lmops-tiny/{mv.version}", return_type="components"
    )
    base = mlflow.transformers.load_model(
        f"models:/lmops-tiny/{parent.version}", return_type="components"
    )
    assert parts["tokenizer"].chat_template == SFT_CHAT_TEMPLATE
    assert isinstance(parts["model"], type(base["model"]))
    tuned_w = dict(parts["model"].named_parameters())
    changed = [n for n, p in base["model"].named_parameters()
               if not p.data.equal(tuned_w[n].data)]  # fmt: skip
    # LoRA's default targets on Llama are the query and value projections: only they move.
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)

    lineage = run_cli(["lineage", f"lmops-tiny/{mv.version}"], home)
    assert f"lmops-tiny/{parent.version}" in lineage.stdout, lineage.stdout


def test_mlm_trains_an_encoder_and_reports_masked_accuracy(home):
    named = [
        "--set",
        "registry.model_name=lmops-tiny-mlm",
        "--set",
        'eval.scorers=["masked_accuracy"]',
    ]
    mlm = run_cli(["train", *FAST, "--objective", "mlm", *named], home)
    assert mlm.returncode == 0, mlm.stdout[-3000:] + mlm.stderr[-3000:]
    assert "masked-token accuracy" in mlm.stdout and "registered, not gated" in mlm.stdout
    client = MlflowClient()
    (mv,) = client.search_model_versions("name = 'lmops-tiny-mlm'")
    assert mv.tags["lmops.model_kind"] == "mlm" and mv.tags["lmops.objective"] == "mlm"
    assert "lmops.gate.staging" not in mv.tags  # never gated for a generation alias

    def history(key):
        return [
            m.value for m in sorted(client.get_metric_history(mv.run_id, key), key=lambda m: m.step)
        ]

    # Logged every 5 steps. In 20 steps an encoder this small is still learning the token
    # frequencies (accuracy stays at a few %: the most frequent tokens), so the loss is
    # what must fall (measured: 6.82 to 6.56 nats; ln 1024 = 6.93 is a uniform guess).
    acc, loss = history("val/masked_accuracy"), history("val/loss")
    assert len(acc) == 4 and all(0 < a < 1 for a in acc) and loss[-1] < loss[0] - 0.1
    assert 0 < float(mv.tags["eval.masked_accuracy"]) < 1
    parts = mlflow.transformers.load_model(
        f"models:/lmops-tiny-mlm/{mv.version}", return_type="components"
    )
    assert type(parts["model"]).__name__ == "BertForMaskedLM"
    assert parts["tokenizer"].mask_token == "<|mask|>"


def test_bad_starting_points_and_worker_counts_fail_in_one_line(home):
    missing = run_cli(["train", *FAST, "--from", "models:/lmops-tiny@nope"], home)
    assert_clean_error(missing, "does not exist in the registry")
    not_uri = run_cli(["train", *FAST, "--from", "/tmp/some-folder"], home)
    assert_clean_error(not_uri, "train.init_from must be a registry URI")
    wrong_kind = run_cli(["train", *FAST, "--objective", "mlm", "--from",
                          "models:/lmops-tiny/1"], home)  # fmt: skip
    assert_clean_error(wrong_kind, "is a causal model; objective 'mlm' trains a mlm model")
    assert_clean_error(run_cli(["train", *FAST, "--objective", "rl"], home), "train.objective")
    preset = run_cli(["train", *FAST, "--set", 'model.preset="llama-7b"'], home)
    assert_clean_error(preset, "unknown model preset 'llama-7b'")
    workers = run_cli(["train", *FAST, "--set", "train.num_workers=64"], home)
    assert_clean_error(workers, "train.num_workers = 64 needs 64 CPUs")
    assert_clean_error(run_cli(["train", *FAST, "--dataset", "ds-0000"], home), "ds-0000")
