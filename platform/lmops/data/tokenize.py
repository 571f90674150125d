"""Tokenize a dataset version into packed token shards that training reads.

Documents are split into train and validation deterministically by content
hash, encoded in parallel batches (the Rust `encode_batch`), joined with an
end-of-text separator and written as flat ``uint16``/``uint32`` arrays (the
nanoGPT layout), so training memory-maps them and cuts fixed-length blocks.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmops.data.ingest import iter_texts

ENCODE_BATCH = 512


def is_validation(doc_hash: str, fraction: float) -> bool:
    """Stable split: the same document lands on the same side in every run."""
    return int(doc_hash[:8], 16) / 0xFFFFFFFF < fraction


@dataclass(frozen=True)
class TokenShards:
    folder: Path
    dtype: str
    train_tokens: int
    val_tokens: int

    def array(self, split: str) -> np.memmap:
        return np.memmap(self.folder / f"{split}.bin", dtype=self.dtype, mode="r")


def _write_split(version: Path, tok, out: Path, keep: Callable[[str], bool], dtype) -> int:
    eos = tok.eos_token_id
    total = 0
    batch: list[str] = []
    with out.open("wb") as fh:

        def flush() -> int:
            enc = tok.backend_tokenizer.encode_batch(batch, add_special_tokens=False)
            ids = np.fromiter(
                (i for e in enc for i in (*e.ids, eos)),
                dtype=dtype,
                count=sum(len(e.ids) + 1 for e in enc),
            )
            ids.tofile(fh)
            return len(ids)

        for _, text in iter_texts(version, keep):
            batch.append(text)
            if len(batch) >= ENCODE_BATCH:
                total += flush()
                batch = []
        if batch:
            total += flush()
    return total


def build_token_shards(
    version: Path, tokenizer_folder: Path, tokenizer_id: str, val_fraction: float, root: Path
) -> TokenShards:
    """Tokenize ``version`` once per tokenizer; later calls reuse the shards."""
    from lmops.tokenizer import load_tokenizer

    folder = root / f"{version.name}-{tokenizer_id}"
    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return TokenShards(folder, meta["dtype"], meta["train_tokens"], meta["val_tokens"])
    tok = load_tokenizer(tokenizer_folder)
    dtype = "uint16" if len(tok) < 2**16 else "uint32"
    tmp = root / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_val = _write_split(
        version, tok, tmp / "val.bin", lambda h: is_validation(h, val_fraction), dtype
    )
    n_train = _write_split(
        version, tok, tmp / "train.bin", lambda h: not is_validation(h, val_fraction), dtype
    )
    meta = {
        "dtype": dtype,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "dataset_version": version.name,
        "tokenizer": tokenizer_id,
        "val_fraction": val_fraction,
        "eos_token_id": tok.eos_token_id,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if folder.exists():
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, folder)
    return TokenShards(folder, dtype, n_train, n_val)
