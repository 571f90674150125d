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
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from lmops.data.catalog import iter_texts

ENCODE_BATCH = 2048  # large batches keep the Rust thread pool busy


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


def _write_splits(version: Path, tok, folder: Path, val_fraction: float, dtype) -> dict:
    """One pass over the version: encode batches, append each document to its split."""
    eos = tok.eos_token_id
    backend = tok.backend_tokenizer
    totals = {"train": 0, "val": 0}
    files = {s: (folder / f"{s}.bin").open("wb") for s in totals}
    batch: list[str] = []
    sides: list[str] = []

    def flush() -> None:
        enc = backend.encode_batch(batch, add_special_tokens=False)
        for side in totals:
            ids = [e.ids for e, s in zip(enc, sides, strict=True) if s == side]
            if not ids:
                continue
            n = sum(map(len, ids)) + len(ids)
            arr = np.fromiter(chain.from_iterable(i + [eos] for i in ids), dtype=dtype, count=n)
            arr.tofile(files[side])
            totals[side] += n

    try:
        for h, text in iter_texts(version):
            batch.append(text)
            sides.append("val" if is_validation(h, val_fraction) else "train")
            if len(batch) >= ENCODE_BATCH:
                flush()
                batch, sides = [], []
        if batch:
            flush()
    finally:
        for fh in files.values():
            fh.close()
    return totals


def build_token_shards(
    version: Path, tokenizer_folder: Path, tokenizer_id: str, val_fraction: float, root: Path
) -> TokenShards:
    """Tokenize ``version`` once per tokenizer; later calls reuse the shards."""
    from lmops.tokenizer import load_tokenizer

    # The split is not part of the dataset version id (it does not change what an ingest
    # publishes), so it is part of the shards' key.
    folder = root / f"{version.name}-{tokenizer_id}-val{val_fraction:g}"
    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return TokenShards(folder, meta["dtype"], meta["train_tokens"], meta["val_tokens"])
    tok = load_tokenizer(tokenizer_folder)
    dtype = "uint16" if len(tok) < 2**16 else "uint32"
    tmp = root / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    totals = _write_splits(version, tok, tmp, val_fraction, dtype)
    n_train, n_val = totals["train"], totals["val"]
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
