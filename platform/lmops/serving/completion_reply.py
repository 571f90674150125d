"""One completions or chat request after its checks: running its jobs on the engine,
the whole (non-streaming) answer with filtered choices, and its metering."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from lmops.serving.api_errors import ApiError
from lmops.serving.engine import Delta, Done, EngineClosed
from lmops.serving.model_source import Served
from lmops.serving.sampling import SamplingParams
from lmops.serving.schemas import ChatCompletionRequest, CompletionRequest
from lmops.serving.state import ServingState

log = logging.getLogger("lmops.serving")

Job = tuple[list[int], SamplingParams]


def nth(params: SamplingParams, k: int) -> SamplingParams:
    """The k-th of n choices: its own seed when sampling, its own beam when searching."""
    if params.beam_width > 1:
        return replace(params, beam_rank=k)
    if params.seed is None or k == 0:
        return params
    return replace(params, seed=params.seed + k)


VERSION_HEADER = "X-Lmops-Served-Version"


@dataclass
class Reply:
    """A request's id, jobs (one per prompt and choice) and usage; ``kind`` is what the
    meter records, ``chat`` picks the chat or the completions body."""

    state: ServingState
    req: CompletionRequest | ChatCompletionRequest
    served: Served
    jobs: list[Job]
    key: str
    kind: str
    chat: bool
    rid: str = field(init=False)
    created: int = field(init=False)
    prompt_tokens: int = field(init=False)
    completion_tokens: int = field(init=False, default=0)  # set by account()

    def __post_init__(self) -> None:
        self.rid = ("chatcmpl-" if self.chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        # Jobs are prompt-major with the n choices of a prompt adjacent.
        n = self.req.n
        self.jobs = [(ids, nth(p, i % n)) for i, (ids, p) in enumerate(self.jobs)]
        self.prompt_tokens = sum(len(ids) for ids, _ in self.jobs[:: max(n, 1)])

    @property
    def fingerprint(self) -> str:
        """``system_fingerprint`` and the ``X-Lmops-Served-Version`` header:
        ``NAME-vN`` of the registered version that answers."""
        return f"{self.served.name}-v{self.served.version}"

    @property
    def obj(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    def usage(self, completion_tokens: int) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def account(self, completion_tokens: int, filtered: int) -> None:
        self.completion_tokens = completion_tokens
        self.state.metrics.tokens(self.prompt_tokens, completion_tokens)
        self.state.meter.record(  # buffered: no database write on this path
            self.key,
            self.served.name,
            self.served.version,
            self.kind,
            self.prompt_tokens,
            completion_tokens,
            200,
            filtered > 0,
        )

    async def run_one(
        self, ids: list[int], params: SamplingParams, incremental: bool = True
    ) -> AsyncIterator[Delta | Done]:
        # A swap between lookup and submit closes the old engine: go to the new one.
        engine = self.served.engine
        for _ in range(3):
            try:
                events = engine.stream(ids, params, incremental, owner=self.key)
                async with aclosing(events) as events:
                    async for ev in events:
                        yield ev
                return
            except EngineClosed:
                engine = self.state.holder.current.engine
        raise ApiError(503, "the model is being swapped; retry")


async def full_reply(r: Reply) -> dict:
    """The non-streaming body: every choice generated, then filtered in one batch."""
    flt, metrics = r.state.output_filter, r.state.metrics
    results = await asyncio.gather(*(_collect(r, ids, p) for ids, p in r.jobs))
    verdicts = await asyncio.gather(*(r.state.batched_filter.check(x[0]) for x in results))
    choices, total, filtered = [], 0, 0
    for i, ((_, done, lp), v) in enumerate(zip(results, verdicts, strict=True)):
        if v.filtered:
            filtered += 1
            metrics.filtered(flt.action, v.blocked)
            log.warning("%s choice %d filtered (%s): %s", r.rid, i, flt.action, v.reasons)
        finish = "content_filter" if v.blocked else done.finish_reason
        total += done.completion_tokens
        choices.append(_choice(r.chat, i, v.text, finish, lp, r.served))
    r.account(total, filtered)
    return {
        "id": r.rid,
        "object": r.obj,
        "created": r.created,
        "model": r.served.name,
        "system_fingerprint": r.fingerprint,
        "choices": choices,
        "usage": r.usage(total),
    }


async def _collect(r: Reply, ids: list[int], params: SamplingParams):
    parts, lps, tops, toks, done = [], [], [], [], None
    async for ev in r.run_one(ids, params, incremental=False):
        if isinstance(ev, Delta):
            parts.append(ev.text)
            toks += ev.token_ids
            lps += ev.logprobs
            tops += ev.top_logprobs
        else:
            done = ev
    lp = (toks, lps, tops) if params.logprobs is not None else None
    return "".join(parts), done, lp


def _choice(chat: bool, i: int, text: str, finish, lp, served: Served) -> dict:
    tok = served.engine.tokenizer
    if chat:
        c = {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": None,
        }
        if lp:
            c["logprobs"] = {
                "content": [
                    {
                        "token": tok.decode([t]),
                        "logprob": v,
                        "top_logprobs": [{"token": tok.decode([a]), "logprob": b} for a, b in alt],
                    }
                    for t, v, alt in zip(*lp, strict=True)
                ]
            }
        return c
    c = {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
    if lp:
        toks, vals, tops = lp
        c["logprobs"] = {
            "tokens": [tok.decode([t]) for t in toks],
            "token_logprobs": vals,
            "top_logprobs": [{tok.decode([a]): b for a, b in alt} for alt in tops],
        }
    return c
