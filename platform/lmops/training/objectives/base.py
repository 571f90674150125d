"""What every objective provides to the training loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class Objective(ABC):
    """Turns sampled rows of the token shards into a batch for one transformers head."""

    name: ClassVar[str]
    auto_class: ClassVar[str]  # the transformers Auto class of the head it trains
    model_kind: ClassVar[str]  # "causal" or "mlm", as evaluation names kinds

    def __init__(self, cfg: Any, tokenizer, seq_len: int):
        self.cfg, self.tokenizer, self.seq_len = cfg, tokenizer, seq_len

    @abstractmethod
    def open(self, token_dir: Path, split: str) -> Any:
        """Memory-map the ``train`` or ``val`` split."""

    @abstractmethod
    def n_rows(self, data: Any) -> int:
        """Rows the sampler draws from: packed blocks or examples."""

    @abstractmethod
    def batch(self, data: Any, rows: np.ndarray, key: int, device) -> dict:
        """Model inputs with ``labels`` for ``rows``; ``key`` seeds any randomness."""

    def val_metrics(self, logits, batch: dict) -> dict[str, tuple[float, float]]:
        """Extra validation metrics as (sum, count) pairs, summed over batches."""
        return {}


class PackedBlocks(Objective, ABC):
    """Objectives that read the packed token stream (``train.bin``/``val.bin``)."""

    def open(self, token_dir: Path, split: str) -> np.memmap:
        import json

        dtype = json.loads((token_dir / "meta.json").read_text())["dtype"]
        return np.memmap(token_dir / f"{split}.bin", dtype=dtype, mode="r")

    def n_rows(self, data: np.memmap) -> int:
        return max(1, (len(data) - 1) // self.seq_len)

    def blocks(self, data: np.memmap, rows: np.ndarray, device):
        import torch

        seq = self.seq_len
        x = np.stack([data[r * seq : (r + 1) * seq].astype(np.int64) for r in rows])
        return torch.from_numpy(x).to(device)
