"""The vLLM engine: the same registered artifact behind the same API, on a GPU.

vLLM is not a dependency of lmops (it needs CUDA); install it on a GPU machine with
``pip install vllm`` and start ``lmops serve --engine vllm``. The registered model is
downloaded once, and vLLM loads its Hugging Face folder (the MLflow transformers
flavor keeps the weights under ``model/`` and the tokenizer under
``components/tokenizer/``). vLLM batches continuously on its own, so this adapter only
translates requests and streams.

Status: written against vLLM's ``AsyncLLMEngine`` API; it has not run here, because no
machine of this project had a GPU with vLLM. Beam search is refused on this engine
(vLLM serves it through a separate API).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from lmops.errors import LmopsError
from lmops.serving.engine import Delta, Done
from lmops.serving.sampling import SamplingParams


def artifact_folders(root: Path) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) inside a downloaded MLflow transformers model."""
    model = next((p.parent for p in root.rglob("config.json") if "components" not in p.parts), None)
    tok = next((p.parent for p in root.rglob("tokenizer.json")), None)
    if model is None or tok is None:
        raise LmopsError(f"{root} holds no Hugging Face model and tokenizer for vLLM to load")
    return model, tok


class VllmEngine:
    def __init__(self, engine, tokenizer, context_length: int, name: str):
        self.engine, self.tokenizer = engine, tokenizer
        self.context_length, self.name = context_length, name

    @classmethod
    def from_uri(cls, uri: str, settings) -> VllmEngine:
        try:
            from vllm import AsyncEngineArgs, AsyncLLMEngine
        except ImportError:
            raise LmopsError(
                "--engine vllm needs vLLM on a CUDA machine: pip install vllm"
            ) from None
        import mlflow
        from transformers import AutoTokenizer

        root = Path(mlflow.artifacts.download_artifacts(uri))
        model_dir, tok_dir = artifact_folders(root)
        dtype = "bfloat16" if settings.quantize == "bf16" else "auto"
        args = AsyncEngineArgs(model=str(model_dir), tokenizer=str(tok_dir), dtype=dtype)
        engine = AsyncLLMEngine.from_engine_args(args)
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(str(model_dir))
        ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0)
        return cls(engine, tok, int(ctx), uri)

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids or [self.tokenizer.eos_token_id]

    async def stream(
        self, prompt_ids: list[int], p: SamplingParams, incremental: bool = True, owner: str = ""
    ) -> AsyncIterator[Delta | Done]:
        """vLLM's own scheduler orders requests (``owner`` is not used: fairness across
        keys there comes from admission control alone); deltas are always incremental."""
        from vllm import SamplingParams as VParams

        if p.beam_width > 1:
            raise LmopsError("use_beam_search is not available on the vLLM engine here")
        vp = VParams(
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k if p.top_k > 0 else -1,
            seed=p.seed,
            stop=list(p.stop) or None,
            logprobs=p.logprobs,
            ignore_eos=p.ignore_eos,
            frequency_penalty=p.frequency_penalty,
            presence_penalty=p.presence_penalty,
            logit_bias=dict(p.logit_bias) or None,
        )
        sent_text, sent_toks, final = 0, 0, None
        async for out in self.engine.generate(
            {"prompt_token_ids": prompt_ids}, vp, uuid.uuid4().hex
        ):
            c = out.outputs[0]
            lps = []
            if c.logprobs:
                lps = [d[t].logprob for d, t in zip(c.logprobs, c.token_ids, strict=False)]
            new_lps = lps[sent_toks:]
            yield Delta(
                c.text[sent_text:], list(c.token_ids[sent_toks:]), new_lps, [[] for _ in new_lps]
            )
            sent_text, sent_toks, final = len(c.text), len(c.token_ids), c
        yield Done(final.finish_reason or "stop", len(prompt_ids), len(final.token_ids))

    def close(self, wait: bool = True) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown:
            shutdown()
