"""Held-out perplexity and bits per byte, per document, with a strided sliding window.

Each document is tokenised with the model's own tokenizer and prefixed with one BOS
token (EOS when there is none), so its first real token is predicted too, as in
lm-evaluation-harness's rolling loglikelihood. Windows of at most ``max_len`` input
tokens end ``stride`` tokens apart; each scores only the tokens the window before did
not (its context is masked out) and takes as much context as fits, so every token is
counted exactly once. With ``stride == max_len`` these are lm-evaluation-harness's
disjoint rolling windows; a smaller stride gives every token at least
``max_len - stride`` tokens of context, at the cost of more forward passes.

Bits per byte is the total NLL in bits over the UTF-8 bytes of the scored text. It
does not depend on the tokenizer, so models with different vocabularies compare.

The unigram baseline (``eval/unigram_bits_per_byte``) scores the same tokens with
add-one-smoothed token frequencies of the training sample, in the model's own
tokenizer: what a model that ignores context achieves. A gate asks a model to beat
it by a margin, which an untrained or collapsed model cannot.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmops.errors import LmopsError
from lmops.evaluation.scorer import EvalData, Scorer, ScoreResult

PER_LANG = ("en", "zh")


def lang_group(lang: str | None) -> str:
    """Primary language subtag, lower case; ``zh-*`` and ``cmn`` are ``zh``."""
    primary = (lang or "").lower().replace("_", "-").split("-", 1)[0] or "und"
    return "zh" if primary == "cmn" else primary


def rolling_windows(n_tokens: int, max_len: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, end, n_scored)`` per window over ``[prefix] + tokens``.

    Inputs ``seq[start:end]`` predict ``seq[start + 1 : end + 1]``; the window scores
    the last ``n_scored`` of those predictions.
    """
    if not 1 <= stride <= max_len:
        raise LmopsError(f"perplexity stride must be in 1..{max_len} (the window), got {stride}")
    out: list[tuple[int, int, int]] = []
    prev, end = 0, min(max_len, n_tokens)
    while end > prev:
        out.append((max(0, end - max_len), end, end - prev))
        prev, end = end, min(end + stride, n_tokens)
    return out


@torch.no_grad()
def corpus_nll(
    model,
    docs: list[list[int]],
    max_len: int,
    stride: int,
    prefix_id: int,
    batch_size: int = 16,
    pad_id: int = 0,
) -> list[tuple[float, int]]:
    """``(nll_sum in nats, tokens scored)`` per document; windows of all documents are batched."""
    model.eval()
    seqs = [torch.tensor([prefix_id, *ids], dtype=torch.long) for ids in docs]
    windows = [
        (d, *w) for d, ids in enumerate(docs) for w in rolling_windows(len(ids), max_len, stride)
    ]
    # Longest first, so each batch pads little.
    windows.sort(key=lambda w: w[1] - w[2])
    nll = [0.0] * len(docs)
    counted = [0] * len(docs)
    for b in range(0, len(windows), batch_size):
        batch = windows[b : b + batch_size]
        width = max(end - start for _, start, end, _ in batch)
        inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
        targets = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (d, start, end, k) in enumerate(batch):
            n = end - start
            inputs[r, :n] = seqs[d][start:end]
            attention[r, :n] = 1
            # Right padding: a causal model's real positions never see the pad after them.
            targets[r, n - k : n] = seqs[d][end - k + 1 : end + 1]
            counted[d] += k
        logits = model(
            input_ids=inputs.to(model.device), attention_mask=attention.to(model.device)
        ).logits
        scored = targets != -100
        # Log-softmax in float32 over the scored positions only (bf16 logits are too coarse).
        token_nll = F.cross_entropy(
            logits[scored.to(logits.device)].float(),
            targets[scored].to(logits.device),
            reduction="none",
        )
        rows = scored.nonzero()[:, 0]
        per_row = torch.zeros(len(batch), dtype=torch.float64)
        per_row.index_add_(0, rows, token_nll.double().cpu())
        for r, (d, *_) in enumerate(batch):
            nll[d] += float(per_row[r])
    return list(zip(nll, counted, strict=True))


def document_nll(
    model, token_ids: list[int], max_len: int, stride: int, prefix_id: int
) -> tuple[float, int]:
    """``(nll_sum in nats, tokens scored)`` of one document (its ids without the prefix)."""
    return corpus_nll(model, [token_ids], max_len, stride, prefix_id, batch_size=1)[0]


def model_context(model) -> int | None:
    cfg = model.config
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)


def unigram_nll(train: list[list[int]], scored: list[list[int]], vocab: int) -> float:
    """Total NLL (nats) of ``scored`` tokens under add-one-smoothed ``train`` frequencies."""
    counts = torch.ones(vocab, dtype=torch.float64)
    for row in train:
        if row:
            counts += torch.bincount(torch.tensor(row), minlength=vocab)[:vocab].double()
    logp = torch.log(counts / counts.sum())
    flat = [t for row in scored for t in row]
    return float(-logp[torch.tensor(flat, dtype=torch.long)].sum()) if flat else 0.0


def _summary(nll: float, tokens: int, n_bytes: int) -> tuple[float, float, float]:
    mean = nll / tokens
    # Capped like val/perplexity, so a diverged model still logs a finite number.
    return math.exp(min(mean, 50.0)), mean, nll / math.log(2) / n_bytes


class PerplexityScorer(Scorer):
    """Perplexity, NLL and bits per byte on held-out documents, overall and per language."""

    name = "perplexity"
    needs = ("held_out",)

    def __init__(self, cfg, batch_size: int = 16):
        self.cfg = cfg  # PerplexityConfig
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg) -> PerplexityScorer:
        return cls(cfg.perplexity, cfg.batch_size)

    def _max_len(self, model) -> int:
        limit = model_context(model)
        if self.cfg.max_len and limit and self.cfg.max_len > limit:
            raise LmopsError(
                f"eval.perplexity.max_len ({self.cfg.max_len}) is longer than the model's "
                f"context ({limit}); lower it or set 0 to use the model's context"
            )
        if not (self.cfg.max_len or limit):
            raise LmopsError(
                "the model's config names no context length; set eval.perplexity.max_len"
            )
        return self.cfg.max_len or limit

    def score(self, model, tokenizer, data: EvalData) -> ScoreResult:
        max_len = self._max_len(model)
        # A stride longer than the window would skip tokens; cut it to the window.
        stride = min(self.cfg.stride, max_len)
        prefix = tokenizer.bos_token_id
        if prefix is None:
            prefix = tokenizer.eos_token_id
        if prefix is None:
            raise LmopsError("perplexity needs a tokenizer with a BOS or EOS token")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix

        docs = data.held_out[: self.cfg.max_docs]
        encoded = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
        chosen, ids, total = [], [], 0
        # Whole documents until max_tokens are reached, so tokens and bytes stay paired.
        for doc, row in zip(docs, encoded, strict=True):
            if total >= self.cfg.max_tokens:
                break
            if row:
                chosen.append(doc)
                ids.append(row)
                total += len(row)
        if not chosen:
            raise LmopsError("no held-out document has text to score perplexity on")
        scores = corpus_nll(model, ids, max_len, stride, prefix, self.batch_size, pad)

        groups: dict[str, list[float]] = {}  # lang -> [docs, tokens, bytes, nll]
        for doc, (nll, n) in zip(chosen, scores, strict=True):
            for key in ("all", lang_group(doc.lang)):
                g = groups.setdefault(key, [0, 0, 0, 0.0])
                g[0] += 1
                g[1] += n
                g[2] += len(doc.text.encode("utf-8"))
                g[3] += nll

        metrics: dict[str, float] = {}
        rows = []
        for key, (n_docs, tokens, n_bytes, nll) in sorted(groups.items()):
            ppl, mean, bpb = _summary(nll, tokens, n_bytes)
            if key == "all" or key in PER_LANG:
                sfx = "" if key == "all" else f"_{key}"
                metrics.update(
                    {
                        f"eval/perplexity{sfx}": ppl,
                        f"eval/nll{sfx}": mean,
                        f"eval/bits_per_byte{sfx}": bpb,
                        f"eval/tokens_scored{sfx}": float(tokens),
                        f"eval/docs_scored{sfx}": float(n_docs),
                    }
                )
            if key != "all":
                rows.append(
                    {
                        "lang": key,
                        "docs": n_docs,
                        "tokens": tokens,
                        "bytes": n_bytes,
                        "perplexity": ppl,
                        "bits_per_byte": bpb,
                    }
                )
        if data.train_sample:
            train = tokenizer([d.text for d in data.train_sample], add_special_tokens=False)
            uni = unigram_nll(train["input_ids"], ids, len(tokenizer))
            _, tokens, n_bytes, _ = groups["all"]
            u_ppl, _, u_bpb = _summary(uni, tokens, n_bytes)
            metrics["eval/unigram_perplexity"] = u_ppl
            metrics["eval/unigram_bits_per_byte"] = u_bpb
        return ScoreResult(metrics, {"eval_perplexity_by_lang": rows})
