"""Masked-token accuracy for encoder (MLM) models such as BERT and RoBERTa.

Masks come from transformers' ``DataCollatorForLanguageModeling`` with its own generator
seeded by ``eval.mlm.seed``: ``mask_prob`` of the non-special tokens are selected and
the 80/10/10 rule applies (80 % become the mask token, 10 % a random token, 10 % stay).
Each document is masked on its own and in order, so the masks do not depend on the
batch size and two evaluations of the same set see the same masks. Accuracy is the
share of selected positions where the model's most likely token is the original one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmops.errors import LmopsError
from lmops.evaluation.perplexity import PER_LANG, lang_group
from lmops.evaluation.scorer import EvalData, Scorer, ScoreResult


def mask_documents(
    tokenizer, texts: list[str], mask_prob: float, seed: int, max_len: int
) -> list[tuple[list[int], list[int]]]:
    """``(masked input ids, labels)`` per text; labels are -100 where nothing was masked."""
    from transformers import DataCollatorForLanguageModeling

    if tokenizer.mask_token is None:
        raise LmopsError("masked-token accuracy needs a tokenizer with a mask token")
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm=True, mlm_probability=mask_prob, seed=seed, return_tensors="pt"
    )
    enc = tokenizer(texts, truncation=True, max_length=max_len, return_special_tokens_mask=True)
    out = []
    for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=True):
        batch = collator([{"input_ids": ids, "special_tokens_mask": special}])
        out.append((batch["input_ids"][0].tolist(), batch["labels"][0].tolist()))
    return out


@torch.no_grad()
def masked_predictions(
    model, masked: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int
) -> list[tuple[int, int, float]]:
    """``(correct, masked tokens, loss sum in nats)`` per document."""
    model.eval()
    out = []
    for b in range(0, len(masked), batch_size):
        batch = masked[b : b + batch_size]
        width = max(len(ids) for ids, _ in batch)
        inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (ids, lab) in enumerate(batch):
            inputs[r, : len(ids)] = torch.tensor(ids)
            labels[r, : len(lab)] = torch.tensor(lab)
            attention[r, : len(ids)] = 1
        logits = model(
            input_ids=inputs.to(model.device), attention_mask=attention.to(model.device)
        ).logits
        sel = labels != -100
        picked = logits[sel.to(logits.device)].float()
        target = labels[sel].to(logits.device)
        correct = (picked.argmax(-1) == target).cpu()
        loss = F.cross_entropy(picked, target, reduction="none").double().cpu()
        rows = sel.nonzero()[:, 0]
        for r in range(len(batch)):
            mine = rows == r
            out.append((int(correct[mine].sum()), int(mine.sum()), float(loss[mine].sum())))
    return out


class MaskedAccuracyScorer(Scorer):
    """Masked-token accuracy and MLM loss on held-out documents, overall and per language."""

    name = "masked_accuracy"
    kinds = frozenset({"mlm"})
    needs = ("held_out",)

    def __init__(self, cfg, batch_size: int = 16):
        self.cfg = cfg  # MLMConfig
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg) -> MaskedAccuracyScorer:
        return cls(cfg.mlm, cfg.batch_size)

    def score(self, model, tokenizer, data: EvalData) -> ScoreResult:
        docs = data.held_out[: self.cfg.max_docs]
        # Truncated to eval.mlm.max_len, or to the model's context when that is shorter.
        limits = [
            self.cfg.max_len,
            tokenizer.model_max_length,
            getattr(model.config, "max_position_embeddings", None),
        ]
        max_len = min(x for x in limits if x)
        masked = mask_documents(
            tokenizer, [d.text for d in docs], self.cfg.mask_prob, self.cfg.seed, max_len
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        preds = masked_predictions(model, masked, self.batch_size, pad)

        groups: dict[str, list[float]] = {}  # lang -> [docs, correct, masked, loss]
        for doc, (correct, n, loss) in zip(docs, preds, strict=True):
            for key in ("all", lang_group(doc.lang)):
                g = groups.setdefault(key, [0, 0, 0, 0.0])
                g[0] += 1
                g[1] += correct
                g[2] += n
                g[3] += loss
        if not groups["all"][2]:
            raise LmopsError("no token was masked: the held-out documents are empty or too short")

        metrics: dict[str, float] = {}
        rows = []
        for key, (n_docs, correct, n, loss) in sorted(groups.items()):
            if not n:
                continue
            acc, mean_loss = correct / n, loss / n
            if key == "all":
                metrics.update(
                    {
                        "eval/masked_accuracy": acc,
                        "eval/mlm_loss": mean_loss,
                        "eval/masked_tokens": float(n),
                    }
                )
                continue
            if key in PER_LANG:
                metrics[f"eval/masked_accuracy_{key}"] = acc
            rows.append(
                {
                    "lang": key,
                    "docs": n_docs,
                    "masked_tokens": n,
                    "accuracy": acc,
                    "mlm_loss": mean_loss,
                }
            )
        return ScoreResult(metrics, {"eval_masked_accuracy_by_lang": rows})
