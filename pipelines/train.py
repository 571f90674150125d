"""Prefect flow: tokenizer → token shards → Ray Train TorchTrainer, tracked in one MLflow run.

From scratch, the tokenizer is trained on the dataset's training split; from a
registered parent (``train.init_from``), the parent's tokenizer and weights are used
and the parent version is recorded on the run and, at registration, in lineage.

lmops run --config tiny     (this flow is one stage of the end-to-end pipeline)
lmops train --objective sft --from models:/lmops-tiny@staging --dataset ds-…
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from mlflow import MlflowClient
from prefect import flow, task
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.data.catalog import iter_texts
from lmops.data.tokenize import build_token_shards, is_validation
from lmops.home import as_path, as_uri, home
from lmops.models.presets import build_hf_config
from lmops.progress import reporter
from lmops.run_heartbeat import keep_alive
from lmops.tokenizer import load_tokenizer, tokenizer_hash, train_or_reuse
from lmops.tracking import configure_mlflow
from lmops.training.launch import train as ray_train
from model_registry import tags as T
from pipelines.ingest import DatasetVersion
from pipelines.retry import transient_io_only


class TrainedModel(BaseModel):
    run_id: str
    model_dir: str
    tokenizer_id: str
    token_dir: str
    vocab_size: int
    train_tokens: int
    val_tokens: int
    final_metrics: dict[str, float]
    num_workers: int
    used_gpu: bool
    objective: str = "clm"
    parent_model: str | None = None  # NAME/VERSION of the registered starting point
    lora: str | None = None  # the LoRA settings, when the result merges an adapter


def _flatten(prefix: str, tree: dict) -> dict[str, str]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(key, v))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else str(v)
    return out


@task(
    name="start-mlflow-run", retries=3, retry_delay_seconds=2, retry_condition_fn=transient_io_only
)
def start_run(config: RunConfig, ds: DatasetVersion) -> str:
    """Create the run that holds params, the loss curve, evaluation and the model."""
    exp_id = configure_mlflow(home(), config.registry.experiment)
    client = MlflowClient()
    run = client.create_run(
        exp_id,
        run_name=f"{config.name}-{ds.version_id}",
        tags={
            "lmops.ray_address": os.environ.get("RAY_ADDRESS", "local"),
            "lmops.config": config.name,
            "lmops.config_digest": config.digest(),
            "lmops.dataset_version": ds.version_id,
            T.OBJECTIVE: config.train.objective,
        },
    )
    params = _flatten("", config.model_dump(mode="json", exclude={"eval"}))
    params["dataset.version"] = ds.version_id
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    return run.info.run_id


@task(
    name="log-dataset-input", retries=3, retry_delay_seconds=2, retry_condition_fn=transient_io_only
)
def log_dataset_input(run_id: str, ds: DatasetVersion) -> None:
    """Link the run to the dataset version (digest = version id), as ``log_input`` does.

    Through the client, not ``mlflow.start_run``: leaving that context would mark the
    run FINISHED before training has started.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource  # noqa: F401  (registers)
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    source = resolve_dataset_source(as_uri(as_path(ds.path)))
    dataset = MetaDataset(source=source, name=ds.version_id, digest=ds.version_id[3:])
    tags = {"mlflow.data.context": "training", "accepted": str(ds.accepted)}
    tags["quarantined"] = str(ds.quarantined)
    client = MlflowClient()
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(dataset._to_mlflow_entity(), [InputTag(k, v) for k, v in tags.items()])
        ],
    )
    client.log_dict(
        run_id, json.loads((as_path(ds.path) / "manifest.json").read_text()), "data/manifest.json"
    )


def mark_failed(run_id: str, interrupted: bool = False) -> None:
    """End the run as FAILED (KILLED when interrupted): its status matches the outcome."""
    # The tracking server may be the thing that failed; the original error is re-raised.
    with contextlib.suppress(Exception):
        MlflowClient().set_terminated(run_id, "KILLED" if interrupted else "FAILED")


def training_texts(version: Path, val_fraction: float):
    """(doc_hash, text) of the training split: every document not held out."""
    return iter_texts(version, split=lambda h: not is_validation(h, val_fraction))


@task(name="fetch-parent-model", retries=2, retry_delay_seconds=3)
def parent_stage(config: RunConfig, run_id: str) -> tuple[str, dict] | None:
    """Download the registered starting point into the run folder (kept for a resume)."""
    uri = config.train.init_from
    if not uri:
        return None
    from lmops.evaluation.loading import save_registered

    folder = home().root / "runs" / run_id / "parent"
    facts_file = folder / "lmops_parent.json"
    if facts_file.exists():  # a resumed run keeps the parent it started from
        facts = json.loads(facts_file.read_text(encoding="utf-8"))
    else:
        with reporter().task(f"parent: fetching {uri}"):
            facts = save_registered(uri, folder)
    from lmops.training.objectives import check_parent_kind

    check_parent_kind(uri, facts["kind"], config.train.objective)
    MlflowClient().set_tag(run_id, T.PARENT_MODEL, f"{facts['name']}/{facts['version']}")
    return str(folder), facts


@task(name="train-tokenizer")
def tokenizer_stage(
    config: RunConfig, ds: DatasetVersion, parent_dir: str | None = None
) -> tuple[str, str, bool]:
    """Train (or reuse) the byte-level BPE on this dataset version's training split.

    The held-out documents (the validation split, which evaluation scores) stay unseen:
    a tokenizer fitted to them would flatter their perplexity. A run from a parent
    model uses the parent's tokenizer: its embeddings are indexed by those ids.
    """
    if parent_dir:
        return parent_dir, tokenizer_hash(Path(parent_dir)), True
    vf = config.data.val_fraction
    with reporter().task("tokenizer: training BPE"):
        folder, tok_id, reused = train_or_reuse(
            lambda: (t for _, t in training_texts(as_path(ds.path), vf)),
            config.tokenizer,
            ds.version_id,
            home().tokenizers,
            split=f"train (val_fraction {vf})",
        )
    return str(folder), tok_id, reused


def run_tokenizer(config: RunConfig, run_id: str, tok_dir: str) -> Path:
    """The tokenizer the model ships with: the base one plus what the objective adds.

    MLM adds a mask token (appended, so the ids of the token shards stay valid); SFT
    saves the chat template it trains on.
    """
    from lmops.training.objectives.mlm import add_mask_token
    from lmops.training.objectives.sft import SFT_CHAT_TEMPLATE

    tok = load_tokenizer(Path(tok_dir))
    if config.train.objective == "mlm":
        add_mask_token(tok)
    if config.train.objective == "sft":
        tok.chat_template = SFT_CHAT_TEMPLATE
    folder = home().root / "runs" / run_id / "tokenizer"
    tok.save_pretrained(str(folder))
    return folder


@task(name="tokenize-and-pack")
def tokenize_stage(config: RunConfig, ds: DatasetVersion, tok_dir: str, tok_id: str):
    """Packed token shards (clm, mlm) or padded prompt/response rows (sft)."""
    if config.train.objective == "sft":
        from lmops.training.objectives.sft import build_sft_shards

        with reporter().task("tokenize: encoding prompt/response examples"):
            sft = build_sft_shards(
                as_path(ds.path),
                load_tokenizer(Path(tok_dir)),
                tok_id,
                config.model.seq_len,
                config.data.val_fraction,
                home().token_shards,
            )
        n = config.model.seq_len
        return str(sft.folder), sft.train_examples * n, sft.val_examples * n
    with reporter().task("tokenize: packing token shards"):
        shards = build_token_shards(
            as_path(ds.path), Path(tok_dir), tok_id, config.data.val_fraction, home().token_shards
        )
    return str(shards.folder), shards.train_tokens, shards.val_tokens


def _watch_steps(run_id: str, total: int, stop: threading.Event) -> None:
    """Drive the progress bar from the steps rank 0 logs to MLflow."""
    client = MlflowClient()
    with reporter().task("train: steps (Ray Train)", total=total) as advance:
        while not stop.wait(1.0):
            try:
                hist = client.get_metric_history(run_id, "train/loss")
            except Exception:
                continue
            if hist:
                advance(max(m.step for m in hist))


@task(name="ray-train")
def train_stage(
    config: RunConfig, run_id: str, tok_dir: str, token_dir: str, parent_dir: str | None = None
) -> dict:
    """Build the transformers config (or take the parent's) and fit it with Ray Train."""
    h = home()
    run_tok = run_tokenizer(config, run_id, tok_dir)
    tok = load_tokenizer(run_tok)
    cfg_dir = h.root / "runs" / run_id / "hf_config"
    if parent_dir:
        from transformers import AutoConfig

        hf_config = AutoConfig.from_pretrained(parent_dir)
    else:
        hf_config = build_hf_config(
            config.model, len(tok), tok.eos_token_id, tok.eos_token_id, tok.pad_token_id
        )
    hf_config.save_pretrained(str(cfg_dir))
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_steps, args=(run_id, config.train.max_steps, stop), daemon=True
    )
    if reporter().interactive:  # polling MLflow only pays when a person watches the bar
        watcher.start()
    try:
        out = ray_train(
            config.model,
            config.train,
            cfg_dir,
            Path(token_dir),
            h.ray_results,
            f"train-{run_id}",
            run_id,
            h.tracking_uri,
            h.root / "runs" / run_id / "model",
            tokenizer_dir=run_tok,
            init_dir=Path(parent_dir) if parent_dir else None,
        )
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(timeout=5)
    tok.save_pretrained(str(out.model_dir))  # the model folder is self-contained
    return {
        "model_dir": str(out.model_dir),
        "metrics": out.metrics,
        "num_workers": out.num_workers,
        "used_gpu": out.used_gpu,
        "vocab_size": len(tok),
    }


def resumable(run_id: str, config: RunConfig) -> str:
    """The dataset version of the stopped training run ``run_id``, checked for resuming.

    A resumed run continues in the same MLflow run and Ray Train storage folder, where
    Ray finds the latest checkpoint; it must use the config the run started with.
    """
    from lmops.errors import LmopsError

    configure_mlflow(home(), config.registry.experiment)
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except Exception:
        raise LmopsError(f"no MLflow run '{run_id}' in {home().tracking_uri}") from None
    tags = run.data.tags
    if "lmops.dataset_version" not in tags or "train.lr" not in run.data.params:
        raise LmopsError(f"run '{run_id}' is not an lmops training run")
    if run.info.status == "FINISHED":
        raise LmopsError(f"run '{run_id}' finished; there is nothing to resume")
    if tags.get("lmops.config_digest") != config.digest():
        raise LmopsError(
            f"run '{run_id}' was started with config '{tags.get('lmops.config')}' "
            f"(digest {tags.get('lmops.config_digest')}); this config's digest is "
            f"{config.digest()}. Resume with the same --config and --set options"
        )
    return tags["lmops.dataset_version"]


@flow(name="lmops-train")
def train_flow(
    config: RunConfig, dataset: DatasetVersion, resume_run: str | None = None
) -> TrainedModel:
    """Start the MLflow run (or reopen a stopped one), train tokenizer, tokenize, train."""
    if resume_run:
        MlflowClient().update_run(resume_run, status="RUNNING")
    run_id = resume_run or start_run(config, dataset)
    keep_alive(run_id)  # a killed training is reaped as KILLED, and can be resumed
    try:
        if not resume_run:
            log_dataset_input(run_id, dataset)
        parent = parent_stage(config, run_id)
        parent_dir = parent[0] if parent else None
        tok_dir, tok_id, _ = tokenizer_stage(config, dataset, parent_dir)
        token_dir, n_train, n_val = tokenize_stage(config, dataset, tok_dir, tok_id)
        t0 = time.perf_counter()
        out = train_stage(config, run_id, tok_dir, token_dir, parent_dir)
    except BaseException as e:
        mark_failed(run_id, interrupted=isinstance(e, KeyboardInterrupt))
        raise
    client = MlflowClient()
    client.set_tag(run_id, "lmops.tokenizer", tok_id)
    lora = config.train.lora
    if lora.r:
        client.set_tag(run_id, T.LORA, f"merged into the parent; {lora.describe()}")
    client.log_metric(run_id, "train/seconds", time.perf_counter() - t0)
    # 0 for a run that never restarted; else the checkpoint step the last attempt began at
    # (a worker-group restart inside the fit, or `lmops train --resume`).
    client.log_metric(run_id, "train/resumed_from_step", out["metrics"].get("resumed_from_step", 0))
    client.log_metric(run_id, "data/train_tokens", n_train)
    client.log_metric(run_id, "data/val_tokens", n_val)
    metrics = {k: float(v) for k, v in out["metrics"].items() if isinstance(v, (int, float))}
    return TrainedModel(
        run_id=run_id,
        model_dir=out["model_dir"],
        tokenizer_id=tok_id,
        token_dir=token_dir,
        vocab_size=out["vocab_size"],
        train_tokens=n_train,
        val_tokens=n_val,
        final_metrics=metrics,
        num_workers=out["num_workers"],
        used_gpu=out["used_gpu"],
        objective=config.train.objective,
        parent_model=f"{parent[1]['name']}/{parent[1]['version']}" if parent else None,
        lora=f"merged into the parent; {lora.describe()}" if lora.r else None,
    )
