"""The transformers engine: dynamic batching of concurrent requests over a KV cache.

One scheduler thread owns the model. Requests that arrive within ``batch_wait_ms`` of
the first waiting one (up to ``max_batch_size`` rows) decode together: one prefill of
the left-padded prompts, then one forward pass per new token for the whole batch,
reusing the KV cache. A row that finishes leaves the batch and its cache rows are
dropped, so the others do not pay for it. Requests that arrive while a batch decodes
wait for the next batch (vLLM's continuous batching admits them mid-flight).

Why a loop of our own instead of ``model.generate``: generate applies one decoding
setting to the whole batch and streams only at batch size 1, while a server batches
requests with different settings and streams each of them. Beam search keeps
``generate`` and runs one request at a time, outside the sampled batch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList

from lmops.serving.fair_queue import FairQueue
from lmops.serving.penalties import OpenAIPenalties, needs_penalties, padded_ids
from lmops.serving.sampling import SamplingParams, choose_tokens, token_logprobs

log = logging.getLogger("lmops.serving")


class EngineClosed(RuntimeError):
    """The engine was swapped out before this request reached it; retry on the new one."""


@dataclass
class Delta:
    """New text of one completion, with the tokens that produced it."""

    text: str
    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)


@dataclass
class Done:
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[Delta | Done | BaseException], None]
    incremental: bool = True
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    owner: str = ""  # the API key: the queue takes keys in turn (fair_queue)


class _Row:
    """Decoding state of one request inside a batch."""

    def __init__(self, req: _Request, device: str):
        self.req = req
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already emitted
        self.pending: list[int] = []  # tokens not yet emitted (text held back)
        self.pending_lp: list[float] = []
        self.pending_top: list[list[tuple[int, float]]] = []
        self.finish: str | None = None
        seed = req.params.seed
        self.gen = None
        if seed is not None and not req.params.greedy:
            self.gen = torch.Generator(device=device).manual_seed(seed % 2**63)


class TransformersEngine:
    """Serve one loaded causal LM; thread-safe ``stream`` for any number of callers."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch_size: int = 16,
        batch_wait_ms: float = 0.0,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = str(next(model.parameters()).device)
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait_ms / 1000
        cfg = model.config
        self.context_length = int(
            getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0)
        )
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        # Token ids a request may name (logit_bias): the rows of the model's logits.
        self.vocab = int(getattr(cfg, "vocab_size", 0) or len(tokenizer))
        # transformers 5.2x renamed ``past_key_values`` to ``cache``; accept both.
        self._cache_arg = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self._queue = FairQueue()
        self._deferred: list[_Request] = []
        self._active: list[_Request] = []
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0  # batches decoded, and rows in them
        self.batched_rows = 0
        self.on_batch = on_batch or (lambda rows: None)
        self._thread = threading.Thread(target=self._loop, name=f"engine-{name}", daemon=True)
        self._thread.start()

    # -- public ---------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids or [self.tokenizer.bos_token_id or self.eos]

    async def stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        incremental: bool = True,
        owner: str = "",
    ) -> AsyncIterator[Delta | Done]:
        """Yield deltas of one completion as they decode, then one :class:`Done`.

        With ``incremental=False`` the text comes as one delta at the end: a response
        that is not streamed then costs the event loop one wake-up, not one per token.
        """
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def emit(item) -> None:
            loop.call_soon_threadsafe(q.put_nowait, item)

        req = _Request(list(prompt_ids), params, emit, incremental, owner=owner)
        with self._lock:
            if self._closed:
                raise EngineClosed(self.name)
            self._queue.put(req)
        try:
            while True:
                item = await q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Done):
                    return
        finally:
            # The caller stopped reading (client gone, output blocked): stop decoding it.
            req.cancelled = True

    def close(self, wait: bool = True) -> None:
        """Stop taking requests; the thread finishes every accepted one, then exits."""
        with self._lock:
            self._closed = True
        self._queue.put(None)  # type: ignore[arg-type]  # wakes the loop
        if wait:
            self._thread.join()

    # -- scheduler --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            if self._deferred:  # beam requests that arrived while a batch decoded
                req = self._deferred.pop(0)
                self._guard([req], self._beam)
                continue
            first = self._queue.get()
            if first is None:
                if self._closed and self._queue.empty():
                    return
                continue
            batch = [first]
            deadline = time.perf_counter() + self.batch_wait
            while len(batch) < self.max_batch_size:
                left = deadline - time.perf_counter()
                try:
                    nxt = self._queue.get(timeout=max(left, 0)) if left > 0 else None
                except queue.Empty:
                    nxt = None
                if nxt is None:
                    if self._closed:
                        self._queue.put(None)  # type: ignore[arg-type]
                    break
                batch.append(nxt)
            self._deferred += [r for r in batch if r.params.beam_width > 1]
            sampled = [r for r in batch if r.params.beam_width <= 1]
            if sampled:
                self._guard(sampled, self._decode)

    def _guard(self, reqs: list[_Request], fn) -> None:
        self._active = list(reqs)
        try:
            fn(reqs)
        except Exception as e:  # a failed batch fails its requests, never the engine
            log.exception("decoding failed")
            for r in self._active:
                r.emit(e)
        self._active = []

    def _waiting(self, room: int) -> list[_Request]:
        """Up to ``room`` queued requests to join the running batch (beams wait for it)."""
        out: list[_Request] = []
        while len(out) < room:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is None:  # close(): leave the wake-up for the scheduler loop
                self._queue.put(None)  # type: ignore[arg-type]
                break
            if req.params.beam_width > 1:
                self._deferred.append(req)
            else:
                out.append(req)
        return out

    # -- decoding ---------------------------------------------------------------------
    def _prefill(self, reqs: list[_Request]):
        """Run the left-padded prompts; (cache, mask, last positions, next-token logits)."""
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, r in enumerate(reqs):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Left padding: positions count real tokens only, as generate does.
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
        )
        return self._cache_of(out), mask, pos[:, -1:], out.logits[:, -1, :]

    @torch.no_grad()
    def _decode(self, reqs: list[_Request]) -> None:
        """Decode ``reqs`` and every request that joins while they run (continuous)."""
        self.batches += 1
        self.batched_rows += len(reqs)
        rows = [_Row(r, self.device) for r in reqs]
        cache, mask, last, logits = self._prefill(reqs)
        joinable = _joinable(cache)
        while True:
            new = self._waiting(self.max_batch_size - len(rows)) if joinable else []
            if new:
                self.batched_rows += len(new)
                self._active += new
                c2, m2, l2, g2 = self._prefill(new)
                mask = _merge(cache, mask, c2, m2)
                last, logits = torch.cat([last, l2]), torch.cat([logits, g2])
                rows += [_Row(r, self.device) for r in new]
            self.on_batch(len(rows))
            params = [r.req.params for r in rows]
            scores = logits
            if needs_penalties(params):
                ids_so_far = padded_ids([r.ids for r in rows], self.device)
                scores = OpenAIPenalties(params, logits.shape[-1])(ids_so_far, logits)
            # Logprobs stay the model's own distribution (before penalties), as in vLLM.
            chosen = choose_tokens(scores, params, [r.gen for r in rows])
            top = max((p.logprobs or 0) for p in params)
            want_lp = any(p.logprobs is not None for p in params)
            lps, alts = token_logprobs(logits, chosen, top) if want_lp else ([], [])
            toks = chosen.tolist()
            keep = []
            for j, row in enumerate(rows):
                self._advance(row, toks[j], lps[j] if want_lp else None, alts[j] if want_lp else [])
                if row.finish is None:
                    keep.append(j)
            if not keep:
                return
            if len(keep) < len(rows):
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                mask, last, chosen = mask[sel], last[sel], chosen[sel]
                rows = [rows[j] for j in keep]
                mask = _trim(cache, mask) if joinable else mask
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
            last = last + 1
            out = self.model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=last,
                use_cache=True,
                **{self._cache_arg: cache},
            )
            cache, logits = self._cache_of(out), out.logits[:, -1, :]

    def _cache_of(self, out):
        return out.cache if self._cache_arg == "cache" else out.past_key_values

    def _advance(self, row: _Row, tok: int, lp: float | None, alts) -> None:
        """Append one token to ``row``, emit the text that is now safe, finish if due."""
        p = row.req.params
        if row.req.cancelled:
            row.finish = "cancelled"
            return
        if tok == self.eos and not p.ignore_eos:
            row.finish = "stop"
        else:
            row.ids.append(tok)
            row.pending.append(tok)
            if lp is not None:
                row.pending_lp.append(lp)
                row.pending_top.append(alts)
            if len(row.ids) >= p.max_tokens:
                row.finish = "length"
        if row.finish is None and not row.req.incremental and not p.stop:
            return
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        hold = 0
        for s in p.stop:
            at = text.find(s, max(0, row.sent - len(s)))
            if at >= 0:
                text, row.finish = text[:at], "stop"
                break
            hold = max(hold, len(s) - 1)
        if row.finish is None and not row.req.incremental:
            return
        if row.finish is None:
            # Hold back what could still become a stop string or half a character.
            safe = len(text) - hold
            if text.endswith("\ufffd"):
                safe = min(safe, len(text) - 1)
        else:
            safe = len(text)
        if safe > row.sent or (row.finish and row.pending):
            row.req.emit(
                Delta(
                    text[row.sent : max(safe, row.sent)],
                    row.pending,
                    row.pending_lp,
                    row.pending_top,
                )
            )
            row.sent = max(safe, row.sent)
            row.pending, row.pending_lp, row.pending_top = [], [], []
        if row.finish:
            row.req.emit(Done(row.finish, len(row.req.prompt_ids), len(row.ids)))

    @torch.no_grad()
    def _beam(self, reqs: list[_Request]) -> None:
        (req,) = reqs
        p = req.params
        ids = torch.tensor([req.prompt_ids], device=self.device)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=p.max_tokens,
            num_beams=p.beam_width,
            do_sample=False,
            early_stopping=True,
            num_return_sequences=p.beam_rank + 1,
            logits_processor=LogitsProcessorList(
                [OpenAIPenalties([p] * p.beam_width, self.vocab, prompt_len=ids.shape[1])]
                if needs_penalties([p])
                else []
            ),
            pad_token_id=self.pad,
            eos_token_id=self.eos,
        )
        new = out[p.beam_rank, ids.shape[1] :].tolist()
        if self.pad != self.eos:  # shorter beams come back padded
            new = [t for t in new if t != self.pad]
        finish = "length"
        if self.eos in new:
            new, finish = new[: new.index(self.eos)], "stop"
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        for s in p.stop:
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        req.emit(Delta(text, new))
        req.emit(Done(finish, len(req.prompt_ids), len(new)))


# Joining a running batch edits the KV cache directly: transformers has no API to
# concatenate two caches of different lengths. Only the plain per-layer tensors of
# ``DynamicLayer`` (``keys``/``values``, [batch, heads, seq, dim]) are touched; any
# other cache kind (sliding windows, quantised) decodes batch by batch instead.
def _joinable(cache) -> bool:
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(x) is DynamicLayer for x in layers)


def _merge(cache, mask: torch.Tensor, other, other_mask: torch.Tensor) -> torch.Tensor:
    """Append ``other``'s rows to ``cache`` (left-padding the shorter); the joint mask."""
    width = max(mask.shape[1], other_mask.shape[1])

    def pad(t: torch.Tensor, n: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, 0, n, 0)) if n else t

    for mine, theirs in zip(cache.layers, other.layers, strict=True):
        a, b = width - mine.keys.shape[-2], width - theirs.keys.shape[-2]
        mine.keys = torch.cat([pad(mine.keys, a), pad(theirs.keys, b)])
        mine.values = torch.cat([pad(mine.values, a), pad(theirs.values, b)])
    left = torch.nn.functional.pad
    return torch.cat(
        [left(mask, (width - mask.shape[1], 0)), left(other_mask, (width - other_mask.shape[1], 0))]
    )


def _trim(cache, mask: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that are padding for every row left (after rows finish)."""
    used = mask.any(dim=0).nonzero()
    first = int(used[0, 0]) if len(used) else 0
    if first == 0:
        return mask
    for layer in cache.layers:
        layer.keys = layer.keys[..., first:, :]
        layer.values = layer.values[..., first:, :]
    return mask[:, first:]
