"""Load the model under evaluation: a Hugging Face folder or an MLflow model URI.

MLflow URIs (``models:/NAME/1``, ``models:/NAME@staging``, ``runs:/ID/model``) load
through ``mlflow.transformers.load_model(..., return_type="components")``, so the
evaluated weights and tokenizer are exactly the registered artifact. Every failure a
user can cause (no such model, no tokenizer, not a transformers model) is one
``LmopsError`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lmops.errors import LmopsError
from lmops.evaluation.scorer import ModelKind


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    kind: ModelKind
    device: str
    source: str
    # For registry URIs: the resolved version (name, version, run_id, tags, model_id).
    version: dict = field(default_factory=dict)


def pick_device(setting: str) -> str:
    import torch

    if setting == "cuda" and not torch.cuda.is_available():
        raise LmopsError("eval.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def model_kind(hf_config) -> ModelKind:
    archs = getattr(hf_config, "architectures", None) or []
    return "mlm" if any(a.endswith("ForMaskedLM") for a in archs) else "causal"


def _from_folder(path: Path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    try:
        cfg = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise LmopsError(f"{path} is not a Hugging Face model folder: {e}") from None
    kind = model_kind(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, TypeError):
        tok = None
    if tok is None:
        raise LmopsError(
            f"model at {path} has no tokenizer; save one beside it "
            "(tokenizer.save_pretrained) so that prompts can be encoded"
        )
    cls = AutoModelForMaskedLM if kind == "mlm" else AutoModelForCausalLM
    return cls.from_pretrained(str(path)), tok, kind


def logged_model_id(mv) -> str | None:
    """The LoggedModel behind a registry version.

    MLflow 3 registers a LoggedModel under the source ``models:/m-<id>``; some
    stores leave ``ModelVersion.model_id`` empty, so the source is the fallback.
    """
    found = getattr(mv, "model_id", None)
    if found:
        return found
    source = mv.source or ""
    return source[len("models:/") :] if source.startswith("models:/m-") else None


def resolve_version(uri: str) -> dict:
    """Registry facts for ``models:/`` URIs; empty for other sources."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return {}
    body = uri[len("models:/") :]
    client = MlflowClient()
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, version = body.partition("/")
            mv = client.get_model_version(name, version)
    except MlflowException as e:
        raise LmopsError(
            f"model {uri} does not exist in the registry at {_tracking()}: "
            f"{e.message.splitlines()[0]}. List versions with the MLflow UI (`lmops ui`)."
        ) from None
    return {
        "name": mv.name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "tags": dict(mv.tags),
        "model_id": logged_model_id(mv),
        "source": mv.source,
    }


def _tracking() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _from_mlflow(uri: str):
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        parts = mlflow.transformers.load_model(uri, return_type="components")
    except MlflowException as e:
        raise LmopsError(f"cannot load {uri}: {e.message.splitlines()[0]}") from None
    except OSError as e:
        raise LmopsError(f"cannot load {uri}: {e}") from None
    tok = parts.get("tokenizer")
    if tok is None:
        raise LmopsError(f"model {uri} was logged without a tokenizer; it cannot be evaluated")
    model = parts["model"]
    return model, tok, model_kind(model.config)


def load_for_eval(source: str, device: str = "auto") -> LoadedModel:
    """Load ``source`` (folder or MLflow URI) in eval mode on the chosen device."""
    path = Path(source)
    version: dict = {}
    if "://" in source or source.startswith(("models:/", "runs:/")):
        version = resolve_version(source)
        model, tok, kind = _from_mlflow(source)
        # Name the model by its URI, not the temporary download folder, in what
        # scorers record (e.g. the prompt version selected for it).
        model.config.name_or_path = source
    elif (path / "MLmodel").exists():  # an MLflow model already downloaded (and verified)
        model, tok, kind = _from_mlflow(str(path))
    elif path.exists():
        model, tok, kind = _from_folder(path)
    else:
        raise LmopsError(
            f"model '{source}' is neither a folder nor an MLflow URI "
            "(models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model)"
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    dev = pick_device(device)
    model.to(dev)
    model.eval()
    return LoadedModel(model, tok, kind, dev, source, version)


def save_registered(uri: str, folder: Path) -> dict:
    """Write the registered model ``uri`` to ``folder`` as a HF folder (weights + tokenizer).

    An alias is resolved to its version first, and that version is what is loaded and
    returned (``name``, ``version``, ``run_id``, ``kind``, ``uri``): the parent a
    fine-tuning run records in lineage, even if the alias moves later.
    """
    import json

    version = resolve_version(uri)
    if not version:
        raise LmopsError(f"'{uri}' is not a registry URI (models:/NAME@ALIAS or models:/NAME/N)")
    pinned = f"models:/{version['name']}/{version['version']}"
    model, tok, kind = _from_mlflow(pinned)
    tmp = folder.with_name(folder.name + ".partial")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    facts = {k: version[k] for k in ("name", "version", "run_id")} | {"kind": kind, "uri": uri}
    (tmp / "lmops_parent.json").write_text(json.dumps(facts), encoding="utf-8")
    tmp.replace(folder)
    return facts
