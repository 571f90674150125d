"""The typed config tree for one lmops run.

One frozen pydantic model per component; each component receives only its own
part. Named run configs (``tiny``, ``cpu``, ``h200``) are TOML files in
``pipelines/configs``; CLI ``--set section.field=value`` overrides any field.
Unknown fields are errors (``extra="forbid"``), so a typo never passes silently.

Sections whose behaviour lives in other packages have their own modules, which import
nothing of lmops: ``objectives`` (``[train.clm|mlm|sft]``), ``lora`` (``[train.lora]``)
and ``suites`` (the named scorer lists). Training and evaluation import their settings
from them, so this package imports neither.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from lmops.config.lora import LoraSettings
from lmops.config.objectives import CLMConfig, SFTConfig
from lmops.config.objectives import MLMConfig as MLMObjectiveConfig
from lmops.config.presets import apply_preset
from lmops.config.suites import SUITES
from lmops.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def digest(self) -> str:
        """Stable short hash of every field: a lineage tag and a cache key."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class DataConfig(_Frozen):
    """What to ingest and how the standard treats it."""

    sources: list[str] = Field(
        default_factory=list,
        description="Files, folders or fsspec URLs. Empty means the built-in sample corpus.",
    )
    text_mode: Literal["file", "paragraph"] = Field(
        "paragraph",
        description="Plain-text files: one document per file or per blank-line paragraph.",
    )
    min_chars: int | None = Field(
        None, ge=1, description="Shorter documents are quarantined; unset = the standard's."
    )
    max_chars: int | None = Field(
        None, ge=1, description="Longer documents are quarantined; unset = the standard's."
    )
    val_fraction: float = Field(
        0.05, gt=0, lt=0.5, description="Share of documents (by content hash) held out."
    )
    standard: str = Field("v1", description="Data standard in lmops/data/standard, or a path.")
    profile: str | None = Field(
        None,
        description="Profile of the standard (web, docs, short) or a TOML file extending one "
        "(a relative path in a config file is read from the file's folder); "
        "unset = the standard's default.",
    )
    quality_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-language threshold overrides, e.g. {en = {min_words = 20}}; each "
        "one that changes the profile's figure is recorded and printed.",
    )
    allowed_langs: list[str] = Field(
        default_factory=list, description="Languages to keep; empty = the standard's list."
    )
    lang_mix: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Expected share range per language of accepted docs (a GX expectation).",
    )
    quality_rules: bool = Field(True, description="Apply Gopher/C4/FineWeb quality rules.")
    near_dedup: bool = Field(True, description="MinHash LSH near-duplicate removal.")
    workers: int = Field(0, ge=0, description="Processes for per-document signals; 0 = cores.")
    batch_rows: int = Field(2000, ge=10, description="Documents per processing batch.")
    canaries: int = Field(
        0,
        ge=0,
        description="Canary documents planted in the input for the PII-leak probe (0 = none).",
    )
    # Where these settings came from, not settings themselves: neither dumped nor hashed,
    # so they change no digest and no dataset version id. ``build_config`` sets them.
    _origin: str | None = PrivateAttr(None)
    _profile_dir: Path | None = PrivateAttr(None)

    @property
    def origin(self) -> str | None:
        """The name of the run config these settings belong to (``cpu``); None when built
        in code. The data standard names it in each override it records."""
        return self._origin

    @property
    def profile_dir(self) -> Path | None:
        """The folder a relative ``profile`` file path is read from: the folder of the
        config file that set it, or None (the working directory) when ``--set`` or
        ``--profile`` did, or the settings were built in code."""
        return self._profile_dir

    def from_config(self, origin: str, profile_dir: Path | None) -> DataConfig:
        """A copy that records its run config's name and the folder of its profile."""
        out = self.model_copy()
        out._origin, out._profile_dir = origin, profile_dir
        return out


class TokenizerConfig(_Frozen):
    """Byte-level BPE trained with `tokenizers` on the accepted documents."""

    vocab_size: int = Field(8192, ge=300, description="Including special tokens.")
    min_frequency: int = Field(2, ge=1)
    max_training_chars: int = Field(
        50_000_000, ge=1000, description="Cap on text fed to BPE training (a prefix sample)."
    )


class ModelConfig(_Frozen):
    """A transformers architecture. ``preset`` fills fields not set explicitly.

    ``bert`` is the encoder for the MLM objective; with ``train.init_from`` the
    architecture is the parent model's and only ``seq_len`` applies.
    """

    preset: str = Field("debug", description="Name in lmops.config.presets.PRESETS.")
    arch: Literal["llama", "gpt2", "bert"] = "llama"
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(0, ge=0, description="Llama grouped-query heads; 0 = num_heads.")
    intermediate_size: int = Field(256, ge=8)
    seq_len: int = Field(128, ge=8, description="Packed training sequence length.")
    dropout: float = Field(0.0, ge=0, lt=1)


class TrainConfig(_Frozen):
    """Ray Train settings, the objective, the starting point and the optimisation schedule."""

    objective: Literal["clm", "mlm", "sft"] = Field(
        "clm", description="Causal LM, masked LM (encoder) or supervised fine-tuning."
    )
    init_from: str = Field(
        "",
        description="Registered model to start from (models:/NAME@ALIAS or models:/NAME/N); "
        "empty = from scratch.",
    )
    clm: CLMConfig = CLMConfig()
    mlm: MLMObjectiveConfig = MLMObjectiveConfig()
    sft: SFTConfig = SFTConfig()
    lora: LoraSettings = LoraSettings()
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP ranks).")
    use_gpu: Literal["auto", "yes", "no"] = "auto"
    strategy: Literal["ddp", "fsdp"] = "ddp"
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1, description="Sequences per worker per micro-batch.")
    grad_accum_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step: batch_size x workers x this."
    )
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decays to lr * ratio.")
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    log_every: int = Field(10, ge=1, description="Steps between metric reports.")
    checkpoint_every: int = Field(100, ge=1, description="Steps between checkpoints.")
    val_batches: int = Field(8, ge=1, description="Validation batches per report.")
    max_failures: int = Field(2, ge=0, description="Worker-group restarts from checkpoint.")
    threads_per_worker: int = Field(0, ge=0, description="torch threads; 0 = cores / workers.")
    peak_tflops: float = Field(
        0, ge=0, description="Peak TFLOP/s of one worker's device, for MFU; 0 = known GPUs only."
    )
    system_metrics: bool = Field(True, description="Log CPU, memory and GPU use to the run.")
    seed: int = 1234


class DecodingConfig(_Frozen):
    """One decoding strategy in transformers ``generate`` terms; evaluation and serving share it."""

    max_new_tokens: int = Field(32, ge=1)
    do_sample: bool = Field(False, description="Sample (temperature/top-k/top-p) or search.")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens; 0 = off.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass; 1 = off.")
    num_beams: int = Field(1, ge=1, description="Beam search width; 1 = no beam search.")
    repetition_penalty: float = Field(1.0, gt=0)
    seed: int = Field(0, description="Seed for sampled strategies, so evaluations repeat.")

    def generate_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kw


def _default_strategies() -> dict[str, DecodingConfig]:
    # The article's five decoding strategies (§ decoding), as evaluation logs them.
    return {
        "greedy": DecodingConfig(),
        "beam": DecodingConfig(num_beams=4),
        "top_k": DecodingConfig(do_sample=True, top_k=40),
        "top_p": DecodingConfig(do_sample=True, top_p=0.9),
        "temperature": DecodingConfig(do_sample=True, temperature=0.7),
    }


class PerplexityConfig(_Frozen):
    """Held-out perplexity: per document, rolling windows with a stride (as lm-eval scores)."""

    stride: int = Field(64, ge=1, description="Tokens advanced per window.")
    max_len: int = Field(0, ge=0, description="Window length; 0 = the model's seq_len.")
    max_docs: int = Field(400, ge=1, description="Held-out documents scored (most).")
    max_tokens: int = Field(20_000, ge=100, description="Stop after this many scored tokens.")


class GenerationConfig(_Frozen):
    """Sample generations for the standard prompts under each decoding strategy."""

    prompts: list[str] = Field(
        default_factory=lambda: [
            "The function returns",
            "import os",
            "A language model is",
            "数据标准",
            "今天天气",
        ],
        min_length=1,
    )
    strategies: dict[str, DecodingConfig] = Field(default_factory=_default_strategies)
    max_new_tokens: int = Field(32, ge=1, description="Overrides each strategy's length.")
    batch_size: int = Field(16, ge=1, description="Prompts generated together (left-padded).")


class PromptTaskConfig(_Frozen):
    """Prompt templates from MLflow's prompt registry, scored with ROUGE on a dev set."""

    task: Literal["summarize"] = "summarize"
    prompt_name: str = Field("lmops-summarize", description="Prompt registry name.")
    alias: str = Field("best", description="Alias moved to the best template on the dev set.")
    max_examples: int = Field(16, ge=1, description="Dev examples scored per template.")
    max_new_tokens: int = Field(48, ge=1)
    select: bool = Field(True, description="Move the alias to the best template.")


class SafetyConfig(_Frozen):
    """Red-team prompts, toxicity and PII of generations."""

    max_new_tokens: int = Field(32, ge=1)
    toxicity_threshold: float = Field(
        0.5, gt=0, lt=1, description="A generation scoring above this is toxic."
    )
    max_prompts: int = Field(0, ge=0, description="Red-team prompts used; 0 = all.")


class MemorisationConfig(_Frozen):
    """Exact continuation of training-document prefixes."""

    max_docs: int = Field(64, ge=1)
    prefix_tokens: int = Field(32, ge=1)
    continuation_tokens: int = Field(16, ge=1)


class MLMConfig(_Frozen):
    """Masked-token accuracy for encoder (MLM) models."""

    mask_prob: float = Field(0.15, gt=0, lt=1)
    max_docs: int = Field(200, ge=1)
    max_len: int = Field(128, ge=8)
    seed: int = 0


class EvalConfig(_Frozen):
    """The standard evaluation every model gets: a list of scorers and their settings."""

    scorers: list[str] = Field(
        default_factory=lambda: list(SUITES["standard"]),
        description="Scorer names (lmops.evaluation.scorer.SCORERS), run in this order.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda if present.")
    batch_size: int = Field(16, ge=1, description="Documents or prompts per forward pass.")
    max_held_out_docs: int = Field(400, ge=1, description="Held-out documents in the eval set.")
    max_train_docs: int = Field(64, ge=1, description="Training documents sampled for probes.")
    perplexity: PerplexityConfig = PerplexityConfig()
    generation: GenerationConfig = GenerationConfig()
    prompt_tasks: PromptTaskConfig = PromptTaskConfig()
    safety: SafetyConfig = SafetyConfig()
    memorisation: MemorisationConfig = MemorisationConfig()
    mlm: MLMConfig = MLMConfig()


class RegistryConfig(_Frozen):
    """Where the model goes. Gate policies are not a run setting: each alias has one,
    fixed in the repository (``model_registry/policies/<alias>.toml``)."""

    model_name: str = Field("lmops-lm", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    experiment: str = "lmops"
    intended_use: str = Field(
        "Research on and evaluation of the lmops pipeline itself. Not for generating text "
        "that people rely on, and not for any decision about people.",
        description="The model card's intended-use statement: what the owner built it for.",
    )


class RunConfig(_Frozen):
    """The whole tree for one ``lmops run``."""

    name: str = "custom"
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()


def _set_dotted(tree: dict[str, Any], dotted: str, raw: str) -> None:
    """Apply ``a.b=value``; the value is parsed as TOML when it can be, else kept as text."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is not a section")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node[parts[-1]] = value


def _format_validation(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return (
            f"{origin}: unknown field '{field}'. "
            "See `lmops config show tiny` for the fields that exist."
        )
    return f"{origin}: field '{field}': {first['msg']} (got {first.get('input')!r})"


def read_toml(path: Path, what: str = "config") -> dict[str, Any]:
    """Read a TOML file (a run config, a data standard, a profile), turning every failure
    into a one-line ConfigError that names it as ``what``."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None


def build_config(
    tree: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    origin: str = "config",
    base_dir: Path | None = None,
) -> RunConfig:
    """Validate a config tree after applying ``section.field=value`` overrides.

    ``base_dir`` is the folder of the config file ``tree`` was read from: a relative
    ``data.profile`` path written in the file is read from there (see
    :attr:`DataConfig.profile_dir`); one given as an override, from the working directory.
    """

    tree = json.loads(json.dumps(tree))  # deep copy; overrides must not leak
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.field=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), raw.strip())
        if key.strip() == "data.profile":
            base_dir = None
    if "policy" in (tree.get("registry") or {}):
        raise ConfigError(
            f"{origin}: registry.policy: a run cannot choose its gate policy; the policy "
            "of each alias is fixed in model_registry/policies/<alias>.toml"
        )
    objective = (tree.get("train") or {}).get("objective", "clm")
    if objective == "mlm":
        # An encoder: the preset's shape as BERT, scored by the MLM suite, unless the
        # config says otherwise (and then _check_objective says whether it fits).
        tree.setdefault("model", {}).setdefault("arch", "bert")
        tree.setdefault("eval", {}).setdefault("scorers", list(SUITES["mlm"]))
    try:
        tree["model"] = apply_preset(tree.get("model", {}))
        cfg = RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, origin)) from None
    _check_objective(cfg, origin)
    return cfg.model_copy(update={"data": cfg.data.from_config(cfg.name, base_dir)})


def _check_objective(cfg: RunConfig, origin: str) -> None:
    t = cfg.train
    encoder = cfg.model.arch == "bert"
    if encoder != (t.objective == "mlm") and not t.init_from:
        raise ConfigError(
            f"{origin}: train.objective '{t.objective}' does not fit model.arch "
            f"'{cfg.model.arch}': mlm trains an encoder (bert), clm and sft a decoder"
        )
    if t.init_from and not t.init_from.startswith("models:/"):
        raise ConfigError(
            f"{origin}: train.init_from must be a registry URI (models:/NAME@ALIAS or "
            f"models:/NAME/VERSION), got '{t.init_from}'"
        )
    if t.lora.r and not t.init_from:
        raise ConfigError(f"{origin}: train.lora.r > 0 adapts a trained model; set train.init_from")
    if t.lora.r and t.strategy == "fsdp":
        raise ConfigError(f"{origin}: LoRA runs with DDP; set train.strategy = 'ddp'")
