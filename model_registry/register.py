"""Log a trained model to MLflow (transformers flavour) and register it as a version.

The version carries its lineage as tags (dataset version, run, code commit,
config, tokenizer) and its evidence (eval metrics, gate decision), so a
reviewer sees in the MLflow UI where a model came from and why it moved.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from lmops import __version__
from lmops.config import DecodingConfig

# Hyper-parameters a caller may pass at inference time through pyfunc's ``params``:
# the decoding settings evaluation uses (lmops.config.DecodingConfig), same defaults.
INFERENCE_PARAMS = DecodingConfig(max_new_tokens=64).model_dump(
    include={"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "num_beams"}
)


def code_commit() -> str:
    """The checkout's commit (with ``-dirty`` when modified), or the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return f"lmops-{__version__}"


def log_and_register(
    model_dir: Path,
    model_name: str,
    tags: dict[str, str],
    model_card: str,
    before_register=None,
) -> tuple[str, str, str | None]:
    """Log the HF folder in the active run and register it.

    ``before_register(model_id)`` runs between logging and registering: the moment
    the LoggedModel exists, so evaluation metrics can be attached to it. Returns
    (model_uri, version, model_id).
    """
    from mlflow.models import infer_signature
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        PreTrainedTokenizerFast,
    )

    from lmops.evaluation.loading import model_kind

    run_id = mlflow.active_run().info.run_id
    existing = MlflowClient().search_model_versions(
        f"name = '{model_name}' and run_id = '{run_id}'"
    )
    if existing:  # a retried task whose first attempt registered before losing the reply
        mv = max(existing, key=lambda v: int(v.version))
        return mv.source, str(mv.version), getattr(mv, "model_id", None)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    if model_kind(AutoConfig.from_pretrained(str(model_dir))) == "mlm":
        # An encoder logs as a fill-mask pipeline: it has no generation parameters.
        model = AutoModelForMaskedLM.from_pretrained(str(model_dir))
        task = "fill-mask"
        signature = infer_signature([f"The function {tokenizer.mask_token} a value"], ["returns"])
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        task = "text-generation"
        signature = infer_signature(["The function returns"], ["a value"], params=INFERENCE_PARAMS)
    # Pinned requirements: MLflow's inference of them imports optional vision
    # packages that a text model does not need.
    import torch
    import transformers
    from huggingface_hub import ModelCard

    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name="model",
        task=task,
        signature=signature,
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"transformers=={transformers.__version__}",
            "safetensors",
        ],
        model_card=ModelCard(model_card),
        tags=tags,
    )
    if before_register is not None:
        before_register(info.model_id)
    version = mlflow.register_model(info.model_uri, model_name, tags=tags)
    return info.model_uri, str(version.version), info.model_id


def ingest_run_id(dataset_version: str) -> str | None:
    """The ingest run that holds ``dataset_version``'s validation evidence, if logged."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=(
            f"tags.`lmops.kind` = 'ingest' and tags.`lmops.dataset_version` = '{dataset_version}'"
        ),
        order_by=["attributes.start_time ASC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def set_version_tags(name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def current_holder(name: str, alias: str):
    """The version that holds ``alias`` now, or None."""
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
