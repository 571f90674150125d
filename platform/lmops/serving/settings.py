"""What ``lmops serve`` runs with: flags on the CLI, the same fields for Ray Serve."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "models:/lmops-lm@production",
        description="A registry alias (followed when it moves), a version or a model folder.",
    )
    engine: Literal["transformers", "vllm"] = "transformers"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantize: Literal["none", "int8", "bf16"] = Field(
        "none", description="int8: dynamic quantisation of Linear layers (CPU); bf16: GPU."
    )
    max_batch_size: int = Field(16, ge=1)
    batch_wait_ms: float = Field(
        0.0, ge=0, description="Wait for company before a new batch; later arrivals join anyway."
    )
    max_tokens_limit: int = Field(512, ge=1, description="Largest max_tokens a request may ask.")
    default_max_tokens: int = Field(16, ge=1, description="max_tokens when a request omits it.")
    max_request_bytes: int = Field(1_000_000, ge=1024)
    # Admission control (lmops.serving.admission); the defaults keep a 2-core server fair.
    request_token_budget: int = Field(
        4096, ge=1, description="Most tokens one request may generate: prompts x n x max_tokens."
    )
    max_queued_requests: int = Field(
        64, ge=1, description="Requests admitted and not finished, across keys; then 503."
    )
    key_max_concurrent: int = Field(16, ge=1, description="Requests in flight per key; then 429.")
    key_tokens_per_minute: int = Field(
        120_000, ge=1, description="Prompt plus generated tokens per key and minute; then 429."
    )
    watch_interval_s: float = Field(
        5.0, gt=0, description="How often the alias and the key file are checked."
    )
    allow_unsigned: bool = Field(
        False,
        description="Development only: serve a model folder, or a version whose signed "
        "evidence and promotion record do not verify. Logged loudly at start-up.",
    )
    safety_action: Literal["block", "redact", "off"] = "redact"
    toxicity_threshold: float = Field(0.5, gt=0, lt=1)
    require_api_key: bool = Field(True, description="False only for a private laptop session.")
    api_keys_file: str | None = None
    usage_db: str | None = Field(None, description="SQLAlchemy URL; default under LMOPS_HOME.")
