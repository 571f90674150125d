"""Learning-rate schedule and batch sampling, kept free of Ray and MLflow so they test alone."""

from __future__ import annotations

import math

import numpy as np


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``base_lr * min_ratio`` (nanoGPT's schedule).

    Written as a pure function of the step rather than a torch ``LRScheduler`` (such as
    transformers' cosine-with-min-lr schedule): a resumed worker group needs no
    scheduler state in the checkpoint to land on exactly the same learning rate.
    """
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def block_indices(
    n_tokens: int, seq_len: int, step: int, batch: int, rank: int, world: int, seed: int
) -> np.ndarray:
    """Start offsets of this rank's packed blocks for ``step``.

    The token stream (documents joined by end-of-text) is cut into fixed
    ``seq_len`` blocks; each epoch visits them in a seeded permutation, and ranks
    take disjoint slices, so a resumed run sees exactly the blocks it would have.
    """
    n_blocks = max(1, (n_tokens - 1) // seq_len)
    per_step = batch * world
    first = step * per_step + rank * batch
    out = np.empty(batch, dtype=np.int64)
    for i in range(batch):
        k = first + i
        epoch, pos = divmod(k, n_blocks)
        perm = np.random.default_rng(seed + epoch).permutation(n_blocks)
        out[i] = perm[pos] * seq_len
    return out
