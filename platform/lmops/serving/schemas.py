"""Request and response bodies of the OpenAI-compatible API.

Fields follow OpenAI's API; ``top_k``, ``use_beam_search`` and ``ignore_eos`` are the
extras vLLM's server takes in the body (``extra_body`` in the ``openai`` client).
Unknown fields are refused with a 400 naming them, as OpenAI does, so a misspelt
setting is never silently ignored. Fields OpenAI defines that this server does not
implement are refused when set to anything but their neutral value (``echo``,
``suffix``, ``best_of`` other than ``n``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmops.serving.penalties import LOGIT_BIAS_MAX_ENTRIES, LOGIT_BIAS_RANGE
from lmops.serving.sampling import SamplingParams


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    stream_options: dict | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    user: str | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = Field(
        None,
        description="Token id (as a string) to a bias from -100 to 100 added to its logit; "
        f"at most {LOGIT_BIAS_MAX_ENTRIES} entries.",
    )
    # vLLM's extras
    top_k: int = Field(
        0, ge=-1, le=1_000_000, description="Keep the k most likely tokens; 0 or -1 = off."
    )
    use_beam_search: bool = False
    ignore_eos: bool = False

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings")
        return stops

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v):
        if not v:
            return v
        if len(v) > LOGIT_BIAS_MAX_ENTRIES:
            raise ValueError(f"logit_bias takes at most {LOGIT_BIAS_MAX_ENTRIES} entries")
        for tok, bias in v.items():
            if not tok.isdigit():
                raise ValueError(f"logit_bias keys are token ids; {tok[:20]!r} is not one")
            if not -LOGIT_BIAS_RANGE <= bias <= LOGIT_BIAS_RANGE:
                raise ValueError("logit_bias values are from -100 to 100")
        return v

    @model_validator(mode="after")
    def _supported(self):
        if self.use_beam_search and self.stream:
            raise ValueError("use_beam_search cannot stream: beams change until the end")
        return self

    def sampling(self, max_tokens: int, logprobs: int | None) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0 if self.use_beam_search else self.temperature,
            top_p=self.top_p,
            top_k=max(self.top_k, 0),
            seed=self.seed,
            stop=tuple(self.stop or ()),
            beam_width=max(self.n, 2) if self.use_beam_search else 1,
            logprobs=logprobs,
            ignore_eos=self.ignore_eos,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            logit_bias=tuple(
                sorted((int(k), float(b)) for k, b in (self.logit_bias or {}).items())
            ),
        )


class CompletionRequest(_Req):
    prompt: str | list[str] = Field(description="One prompt, or up to 16 in a list.")
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    @model_validator(mode="after")
    def _completion_only(self):
        if self.echo or self.suffix or (self.best_of not in (None, 1, self.n)):
            raise ValueError("echo, suffix and best_of are not supported")
        if isinstance(self.prompt, list) and not 1 <= len(self.prompt) <= 16:
            raise ValueError("prompt takes 1 to 16 strings")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str | list[dict]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class ChatCompletionRequest(_Req):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
