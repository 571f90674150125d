"""Byte-level BPE tokenizer, trained with Hugging Face `tokenizers`.

The tokenizer is a versioned artifact: its id is the hash of ``tokenizer.json``,
and it is cached per (dataset version, tokenizer config), so reruns reuse it.
It is saved in Hugging Face format (``PreTrainedTokenizerFast``) next to the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from lmops.config import TokenizerConfig

EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [EOS, PAD]
# Saved with every tokenizer so that ``/v1/chat/completions`` works on any lmops model:
# plain "role: text" lines, the shape dialogue takes in ordinary text, because a model
# pre-trained here has seen no special chat tokens. A fine-tuned model saves its own.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    used = 0
    for t in texts:
        if used >= max_chars:
            return
        used += len(t)
        yield t


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig):
    """Train a byte-level BPE on ``texts`` and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_capped(texts, cfg.max_training_chars), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        model_max_length=1_000_000,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tokenizer_hash(folder: Path) -> str:
    """Content id of a saved tokenizer (its ``tokenizer.json``)."""
    return "tok-" + hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()[:16]


def train_or_reuse(
    texts_factory, cfg: TokenizerConfig, dataset_version: str, root: Path, split: str = "all"
) -> tuple[Path, str, bool]:
    """Return (folder, tokenizer id, reused) for this dataset version, split and config."""
    key = hashlib.sha256(
        json.dumps([dataset_version, split, cfg.model_dump(mode="json")], sort_keys=True).encode()
    ).hexdigest()[:16]
    folder = root / key
    if (folder / "tokenizer.json").exists():
        return folder, tokenizer_hash(folder), True
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tok = train_tokenizer(texts_factory(), cfg)
    tok.save_pretrained(str(tmp))
    (tmp / "lmops_tokenizer.json").write_text(
        json.dumps(
            {
                "dataset_version": dataset_version,
                "split": split,
                "config": cfg.model_dump(mode="json"),
            }
        ),
        encoding="utf-8",
    )
    os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
    return folder, tokenizer_hash(folder), False


def load_tokenizer(folder: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))
