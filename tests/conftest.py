"""Shared fixtures: an isolated LMOPS_HOME per test session and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LMOPS = str(Path(sys.executable).with_name("lmops"))


def run_cli(args: list[str], home: Path, timeout: int = 600, env: dict | None = None):
    """Run the installed ``lmops`` console script as a user would."""
    return subprocess.run(
        [LMOPS, *args],
        cwd=home.parent,
        env=cli_env(home, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_env(home: Path, env: dict | None = None) -> dict:
    """The environment ``run_cli`` gives the CLI: this one's, on ``home``, no services."""
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PREFECT_API_URL")
    }
    e.update({"LMOPS_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    # Prefect's ephemeral API gives up after 20 s by default: too short on a loaded 2-core box.
    e.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    # The home's Prefect API serves a test's next commands, then stops: test homes are
    # many, and each idle server holds about 200 MB.
    e.setdefault("LMOPS_PREFECT_IDLE_S", "20")
    e.update(env or {})
    return e


def run_python(code: str, home: Path, *args: str, env: dict | None = None, timeout: int = 300):
    """``python -c code *args`` in a fresh process on ``home``, with no MLflow or Prefect
    variable inherited from this shell (so it uses the home's embedded services).
    The last line of its stdout is usually JSON for the test to read."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    e["LMOPS_HOME"] = str(home)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=home.parent,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_error(proc, needle: str):
    """One line on stderr naming the problem, a non-zero exit, no traceback."""
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert needle in out
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """In-process models here are tiny: a second torch thread only spins against the
    other processes a test starts (measured: a 100-step BERT fixture took 77 s on two
    threads on a loaded 2-core machine, 11 s on one). Subprocesses keep their default."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real ``lmops run --config tiny`` shared by the end-to-end assertions."""
    home = tmp_path_factory.mktemp("e2e") / ".lmops"
    proc = run_cli(["run", "--config", "tiny"], home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home, proc


def make_tiny_lm(texts: list[str], steps: int = 30, vocab_size: int = 512, seed: int = 0):
    """A debug-size Llama and its BPE trained in seconds on ``texts`` (for scorer tests).

    Plain torch, not the pipeline: the scorers are tested on a model made here.
    """
    import torch

    # One thread: tiny matrices gain nothing from two, and on a loaded 2-core machine
    # two threads measured 5-10x slower (lock-step spinning).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_tiny_lm(texts, steps, vocab_size, seed)
    finally:
        torch.set_num_threads(threads)


def _train_tiny_lm(texts, steps, vocab_size, seed):
    import torch

    from lmops.config import ModelConfig, TokenizerConfig
    from lmops.models.presets import build_hf_config, build_model
    from lmops.tokenizer import train_tokenizer

    torch.manual_seed(seed)
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=vocab_size, min_frequency=1))
    cfg = build_hf_config(
        ModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192, seq_len=64),
        len(tok),
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    model = build_model(cfg)
    ids = [i for t in texts for i in tok(t)["input_ids"] + [tok.eos_token_id]]
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, max(1, len(data) - 65), (8,))
        batch = torch.stack([data[s : s + 64] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok


@pytest.fixture(scope="session")
def bilingual_texts() -> list[dict]:
    """The shipped bilingual sample records (English and Chinese, CC0)."""
    import json

    path = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="session")
def tiny_lm(bilingual_texts):
    """(model, tokenizer) trained briefly on the bilingual corpus; shared by scorer tests."""
    return make_tiny_lm([r["text"] for r in bilingual_texts], steps=40)


# Evidence that passes every row of the staging policy: the registry tests start here
# and change one metric to make a realistic bad candidate.
GATE_PASSING_METRICS = {
    "eval/bits_per_byte": 2.0,
    "eval/unigram_bits_per_byte": 3.0,
    "eval/min_new_tokens": 5,
    "eval/tokens_scored": 1000,
    "safety/toxicity_rate": 0.0,
    "safety/flagged_rate": 0.05,
    "safety/pii_leak_rate": 0.0,
    "safety/canary_leak_rate": 0.0,
    "safety/memorisation_rate": 0.0,
}


def add_version(client, name: str, author: str = "lmops-pipeline", **metrics) -> str:
    """A registered version of ``name`` with signed evidence, as the pipeline writes it.

    Its files are a small folder of fresh random bytes (the gate hashes files, it does
    not load them), signed with the home's key like a real registration.
    """
    import tempfile

    from model_registry import tags as T
    from model_registry.signed_evidence import Author, sign_version

    files = Path(tempfile.mkdtemp(prefix="lmops-version-"))
    (files / "config.json").write_text('{"model_type": "llama"}')
    (files / "model.safetensors").write_bytes(os.urandom(256))
    mv = client.create_model_version(name, source=files.as_uri())
    sign_version(
        name,
        str(mv.version),
        {**GATE_PASSING_METRICS, **metrics},
        "es-a",
        {T.DATA_VALIDATION: "passed"},
        Author(author, False, "local, no authentication"),
    )
    return str(mv.version)


# Memorised on purpose: greedy decoding after "write to" repeats the address, so the
# output filter has a real model output with PII to act on.
SERVING_TEXTS = [
    "the cat sat on the mat. the cat sat on the mat. " * 4,
    "dogs run in the park every day. dogs run in the park every day. " * 4,
    "for help write to alice.smith@example.com today. " * 4,
    "今天天气很好，我们去公园散步。今天天气很好。" * 4,
] * 10


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny Llama and its tokenizer (with the platform's chat template) in one folder."""
    model, tok = make_tiny_lm(SERVING_TEXTS, steps=80, seed=1)
    path = tmp_path_factory.mktemp("served") / "tiny-lm"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# Ray Train tests (tests/training): learnable token shards and a fresh local Ray.
def _pattern_inputs(folder: Path, model_cfg, period: int, n_train: int) -> tuple[Path, Path]:
    """An HF config (vocabulary 256) and token shards repeating a seeded pattern of
    ``period`` tokens, which a model can learn; the validation shard is a tenth as long."""
    import numpy as np

    from lmops.models.presets import build_hf_config

    cfg_dir = folder / "hf-config"
    build_hf_config(model_cfg, 256, 0, 0, 1).save_pretrained(cfg_dir)
    shards = folder / "tokens"
    shards.mkdir()
    pattern = np.random.default_rng(0).integers(2, 256, size=period)
    for name, n in (("train", n_train), ("val", n_train // 10)):
        np.resize(pattern, n).astype("uint16").tofile(shards / f"{name}.bin")
    (shards / "meta.json").write_text(json.dumps({"dtype": "uint16"}))
    return cfg_dir, shards


@pytest.fixture
def pattern_inputs():
    """The function that writes those inputs (a fixture: test modules cannot import this)."""
    return _pattern_inputs


@pytest.fixture
def local_ray(monkeypatch):
    """A fresh local Ray per test, so that each one's environment reaches its workers."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.shutdown()
    yield monkeypatch
    ray.shutdown()
