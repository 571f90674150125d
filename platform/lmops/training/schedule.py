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


def row_indices(n_rows: int, step: int, batch: int, rank: int, world: int, seed: int) -> np.ndarray:
    """This rank's row numbers (packed blocks or fine-tuning examples) for ``step``.

    Each epoch visits the rows in a seeded permutation, and ranks take disjoint
    slices, so a resumed run sees exactly the rows it would have. Each row costs
    O(1): a step costs O(batch), whatever the corpus size.
    """
    n_rows = max(1, n_rows)
    first = step * batch * world + rank * batch
    out = np.empty(batch, dtype=np.int64)
    for i in range(batch):
        epoch, pos = divmod(first + i, n_rows)
        out[i] = permuted(pos, n_rows, seed * 1_000_003 + epoch)
    return out


def block_indices(
    n_tokens: int, seq_len: int, step: int, batch: int, rank: int, world: int, seed: int
) -> np.ndarray:
    """Start offsets of this rank's packed blocks for ``step``.

    The token stream (documents joined by end-of-text) is cut into fixed ``seq_len``
    blocks, sampled by ``row_indices``.
    """
    n_blocks = max(1, (n_tokens - 1) // seq_len)
    return row_indices(n_blocks, step, batch, rank, world, seed) * seq_len


def mask_key(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed for the random masks of one rank's micro-batch: resumable, like the data."""
    return _mix(_mix(seed * 1_000_003 + step) ^ rank) >> 1


_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def permuted(i: int, n: int, key: int) -> int:
    """Position ``i`` of a seeded pseudo-random permutation of ``range(n)``.

    Written here because numpy and torch shuffle only by materialising the whole
    permutation (O(n) memory and time for every draw, which starves a GPU on a billion
    blocks). A balanced Feistel network is a bijection on the smallest even power of two
    >= n; walking the cycle until the value falls below n keeps it a bijection on
    range(n), in under four rounds on average.
    """
    if n <= 1:
        return 0
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    low = (1 << half) - 1
    x = i
    while True:
        left, right = x >> half, x & low
        for r in range(4):
            left, right = right, left ^ (_mix(right ^ _mix(key * 4 + r)) & low)
        x = (left << half) | right
        if x < n:
            return x
