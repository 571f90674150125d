"""Supervised fine-tuning on prompt/response records: the loss counts response tokens only.

Fine-tuning records (``prompt``, ``response``) pass the data standard like any other
document; the accepted text keeps the boundary as one U+2028 LINE SEPARATOR (see
``lmops.data.standard.records.PROMPT_RESPONSE_SEP``). Each record becomes a two-turn chat
rendered with ``SFT_CHAT_TEMPLATE``, whose ``{% generation %}`` block lets
transformers' ``apply_chat_template(return_assistant_tokens_mask=True)`` mark the
response tokens; every other position gets label -100. The template is saved with
the model's tokenizer, so ``/v1/chat/completions`` prompts it the way it was trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmops.training.objectives.base import Objective

IGNORE = -100
# The pre-training template's "role: text" lines, with the assistant's text (and the
# end-of-text that stops generation) inside the generation block.
SFT_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ 'assistant:' }}"
    "{% generation %}{{ ' ' + m['content'] + eos_token }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def split_record(text: str) -> tuple[str, str] | None:
    """(prompt, response) of an accepted fine-tuning document, or None for plain text."""
    from lmops.data.standard.records import PROMPT_RESPONSE_SEP

    prompt, sep, response = text.partition(PROMPT_RESPONSE_SEP)
    return (prompt, response) if sep and prompt.strip() and response.strip() else None


def encode(tokenizer, prompt: str, response: str, seq_len: int) -> tuple[list[int], list[int]]:
    """Input ids and labels (-100 outside the response) of one example, truncated."""
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    enc = tokenizer.apply_chat_template(
        messages,
        chat_template=SFT_CHAT_TEMPLATE,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids = list(enc["input_ids"])[:seq_len]
    mask = list(enc["assistant_masks"])[:seq_len]
    return ids, [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]


@dataclass(frozen=True)
class SFTShards:
    folder: Path
    train_examples: int
    val_examples: int
    skipped: dict[str, int]


def build_sft_shards(
    version: Path, tokenizer, tokenizer_id: str, seq_len: int, val_fraction: float, root: Path
) -> SFTShards:
    """Encode the version's fine-tuning records once per tokenizer and length.

    Rows are padded to ``seq_len`` and written as ``{split}_ids.npy`` and
    ``{split}_labels.npy``, so training memory-maps them like the packed shards.
    Documents without a prompt/response boundary are counted, not trained on.
    """
    from lmops.data.catalog import iter_texts
    from lmops.data.tokenize import is_validation

    key = hashlib.sha256(
        json.dumps([version.name, tokenizer_id, seq_len, val_fraction, SFT_CHAT_TEMPLATE]).encode()
    ).hexdigest()[:16]
    folder = root / f"sft-{key}"
    if (folder / "meta.json").exists():
        meta = json.loads((folder / "meta.json").read_text())
        return SFTShards(folder, meta["train"], meta["val"], meta["skipped"])
    rows: dict[str, list] = {"train": [], "val": []}
    skipped = {"not_prompt_response": 0, "no_response_tokens": 0}
    for h, text in iter_texts(version):
        pair = split_record(text)
        if pair is None:
            skipped["not_prompt_response"] += 1
            continue
        ids, labels = encode(tokenizer, *pair, seq_len)
        if sum(lab != IGNORE for lab in labels) < 1:
            skipped["no_response_tokens"] += 1
            continue
        rows["val" if is_validation(h, val_fraction) else "train"].append((ids, labels))
    if not rows["train"]:
        from lmops.errors import LmopsError

        raise LmopsError(
            f"dataset {version.name} has no prompt/response records to fine-tune on "
            f"({skipped['not_prompt_response']} plain documents); ingest JSONL records "
            'with "prompt" and "response" fields'
        )
    if not rows["val"]:  # a tiny set: validate on the training rows rather than on nothing
        rows["val"] = rows["train"][:8]
    tmp = root / f".tmp-sft-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pad = tokenizer.pad_token_id
    for split, examples in rows.items():
        ids = np.full((len(examples), seq_len), pad, dtype=np.int32)
        labels = np.full((len(examples), seq_len), IGNORE, dtype=np.int32)
        for i, (x, y) in enumerate(examples):
            ids[i, : len(x)], labels[i, : len(y)] = x, y
        np.save(tmp / f"{split}_ids.npy", ids)
        np.save(tmp / f"{split}_labels.npy", labels)
    meta = {"train": len(rows["train"]), "val": len(rows["val"]), "skipped": skipped}
    (tmp / "meta.json").write_text(json.dumps(meta))
    os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
    return SFTShards(folder, meta["train"], meta["val"], skipped)


class SupervisedFineTuning(Objective):
    name = "sft"
    auto_class = "AutoModelForCausalLM"
    model_kind = "causal"

    def open(self, token_dir: Path, split: str):
        ids = np.load(token_dir / f"{split}_ids.npy", mmap_mode="r")
        return ids, np.load(token_dir / f"{split}_labels.npy", mmap_mode="r")

    def n_rows(self, data) -> int:
        return len(data[0])

    def batch(self, data, rows, key, device) -> dict:
        import torch

        ids = torch.from_numpy(np.stack([data[0][r] for r in rows]).astype(np.int64))
        labels = torch.from_numpy(np.stack([data[1][r] for r in rows]).astype(np.int64))
        # The pad token is special: it never occurs inside an encoded example.
        attention = ids != self.tokenizer.pad_token_id
        return {
            "input_ids": ids.to(device),
            "attention_mask": attention.long().to(device),
            "labels": labels.to(device),
        }
