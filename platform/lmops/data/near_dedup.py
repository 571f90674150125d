"""MinHash-LSH near-duplicate index that persists, so new data is deduped against old.

Parameters follow FineWeb's MinHash dedup: 14 bands x 8 rows (112 permutations), which
puts the 50%-collision point at Jaccard ~0.72 ((1/14) ** (1/8)) on 5-gram shingles.

Shingles are lower-cased word 5-grams (``\\w+`` words, punctuation dropped) for
space-separated languages and character 5-grams of the word characters for Chinese,
Japanese and other unsegmented scripts, or for any text whose CJK share is at least
0.3 (so a mislabelled Chinese page is still shingled sensibly). A text shorter than
five units is a single shingle; texts without any word character all share the empty
signature and are therefore duplicates of each other.

Speed: instead of one Python ``MinHash.update`` call per shingle, shingle hashes are
computed with numpy (CRC32 per distinct word or the code point per character, combined
FNV-style over the 5-gram and avalanched with the Murmur3 finalizer) and the 112
permutations are applied as one vectorised ``min``. The permutation step is exactly
datasketch's ``affine32`` scheme with datasketch's own permutation parameters (fixed
seed), so the result equals ``MinHash(seed=SEED).update_batch(hashes)`` with an identity
hash function and the sketches interoperate with ``datasketch`` (``jaccard``,
``MinHashLSH``). Everything is deterministic across processes and machines.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lmops.home import replacing

# datasketch is imported lazily, in the methods that build MinHash objects or the LSH:
# the ingest's annotate stage (every process-pool worker) only needs signature(), and
# ``import datasketch`` pulls in scipy.integrate via datasketch.lsh (~0.6-0.9 s a process).
if TYPE_CHECKING:
    from datasketch import LeanMinHash, MinHash, MinHashLSH

__all__ = ["BANDS", "NGRAM", "NUM_PERM", "ROWS", "SEED", "NearDedupIndex", "shingle_hashes"]

BANDS = 14
ROWS = 8
NUM_PERM = BANDS * ROWS
NGRAM = 5
SEED = 1
SCHEME = "affine32"
_FORMAT_VERSION = 1
_CHUNK_ROWS = 8192  # shingles per vectorised block: 8192 x 112 uint32 = 3.5 MiB

_WORD_RE = re.compile(r"\w+")
_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_CHAR_SHINGLE_LANGS = frozenset({"zh", "cmn", "ja", "th", "lo", "km", "my", "bo"})
_CJK_SHARE_FOR_CHARS = 0.3

_FNV_PRIME = np.uint64(0x100000001B3)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_M64_1 = np.uint64(0xFF51AFD7ED558CCD)
_M64_2 = np.uint64(0xC4CEB9FE1A85EC53)
_M32_1 = np.uint32(0x85EBCA6B)
_M32_2 = np.uint32(0xC2B2AE35)
_MASK32 = np.uint64(0xFFFFFFFF)
_U32_MAX = np.uint32(0xFFFFFFFF)


def _use_chars(text: str, lang: str) -> bool:
    if (lang or "").lower().replace("_", "-").split("-", 1)[0] in _CHAR_SHINGLE_LANGS:
        return True
    visible = sum(map(len, text.split()))
    return bool(visible) and len(_CJK_RE.findall(text)) / visible >= _CJK_SHARE_FOR_CHARS


def _units(text: str, lang: str) -> np.ndarray:
    """uint64 hash of every shingle unit (word or character) of the normalised text."""
    words = _WORD_RE.findall(text.lower())
    if _use_chars(text, lang):
        joined = "".join(words)
        return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    table = {w: zlib.crc32(w.encode("utf-8")) for w in set(words)}
    return np.fromiter(map(table.__getitem__, words), dtype=np.uint64, count=len(words))


def shingle_hashes(text: str, lang: str, ngram: int = NGRAM) -> np.ndarray:
    """32-bit hash of every ``ngram``-shingle of ``text`` (uint32, in text order)."""
    units = _units(text, lang)
    if units.size == 0:
        return np.empty(0, dtype=np.uint32)
    n = min(ngram, units.size)
    length = units.size - n + 1
    h = np.full(length, _FNV_OFFSET, dtype=np.uint64)
    for i in range(n):
        h = (h ^ units[i : i + length]) * _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= _M64_1
    h ^= h >> np.uint64(33)
    h *= _M64_2
    h ^= h >> np.uint64(33)
    return (h & _MASK32).astype(np.uint32)


def _affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32[num_perm]: datasketch's ``MinHash(scheme="affine32").permutations``.

    A copy of datasketch's ``MinHash._init_permutations`` for affine32 (odd ``a``), written
    here so computing signatures does not import datasketch and scipy in every annotate
    worker (measured import cost, see above); a test pins it to datasketch's own values.
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """Murmur3 32-bit finalizer, identical to datasketch's affine32 pre-mix."""
    h = h ^ (h >> np.uint32(16))
    h = h * _M32_1
    h = h ^ (h >> np.uint32(13))
    h = h * _M32_2
    return h ^ (h >> np.uint32(16))


class NearDedupIndex:
    """MinHash LSH over string keys, with atomic ``.npz`` persistence.

    ``check_and_add`` is the streaming API: it returns the key of an earlier near
    duplicate (the document should be dropped and is NOT added) or adds the document
    and returns None. Candidates come from LSH band collisions; pass ``min_jaccard`` to
    also require an estimated Jaccard similarity, which removes most false positives.
    """

    def __init__(
        self, bands: int = BANDS, rows: int = ROWS, seed: int = SEED, ngram: int = NGRAM
    ) -> None:
        self.bands, self.rows, self.seed, self.ngram = bands, rows, seed, ngram
        self.num_perm = bands * rows
        self._lsh_index: MinHashLSH | None = None  # created on first add/query
        a, b = _affine32_permutations(self.num_perm, seed)
        self._a = a[None, :]
        self._b = b[None, :]
        self._keys: list[str] = []
        self._rows: dict[str, int] = {}
        self._sigs: list[np.ndarray] = []

    @property
    def _lsh(self) -> MinHashLSH:
        if self._lsh_index is None:
            from datasketch import MinHashLSH

            self._lsh_index = MinHashLSH(num_perm=self.num_perm, params=(self.bands, self.rows))
        return self._lsh_index

    @property
    def threshold(self) -> float:
        """Jaccard similarity at which a pair collides in some band with probability ~0.5."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash signature (uint32[num_perm]) of a set of 32-bit shingle hashes."""
        sig = np.full(self.num_perm, _U32_MAX, dtype=np.uint32)
        for start in range(0, hashes.size, _CHUNK_ROWS):
            block = _fmix32(hashes[start : start + _CHUNK_ROWS].astype(np.uint32))[:, None]
            np.minimum(sig, (block * self._a + self._b).min(axis=0), out=sig)
        return sig

    def minhash(self, text: str, lang: str) -> LeanMinHash:
        """Deterministic MinHash of ``text`` (see the module docstring for shingling)."""
        return self.from_signature(self.signature(shingle_hashes(text, lang, self.ngram)))

    def from_signature(self, sig: np.ndarray) -> LeanMinHash:
        """A MinHash from a stored uint32 signature (as computed by :meth:`signature`)."""
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=sig, scheme=SCHEME)

    def items(self):
        """(key, signature) pairs, in insertion order."""
        return zip(self._keys, self._sigs, strict=True)

    def add(self, key: str, mh: MinHash) -> None:
        """Index ``mh`` under ``key``; a key can be added only once."""
        if not isinstance(key, str):
            raise TypeError(f"keys are str, got {type(key).__name__}")
        if key in self._rows:
            raise ValueError(f"key already indexed: {key!r}")
        self._check(mh)
        self._lsh.insert(key, mh, check_duplication=False)
        self._rows[key] = len(self._keys)
        self._keys.append(key)
        self._sigs.append(np.asarray(mh.hashvalues, dtype=np.uint32))

    def query(self, mh: MinHash, min_jaccard: float | None = None) -> list[str]:
        """Keys of near duplicates of ``mh``, most similar first (ties by key)."""
        self._check(mh)
        candidates = self._lsh.query(mh)
        if not candidates:
            return []
        hv = np.asarray(mh.hashvalues, dtype=np.uint32)
        scored = [
            (float(np.count_nonzero(self._sigs[self._rows[k]] == hv)) / self.num_perm, k)
            for k in candidates
        ]
        if min_jaccard is not None:
            scored = [(j, k) for j, k in scored if j >= min_jaccard]
        scored.sort(key=lambda jk: (-jk[0], jk[1]))
        return [k for _, k in scored]

    def check_and_add(
        self, key: str, text: str, lang: str, min_jaccard: float | None = None
    ) -> str | None:
        """Key of the most similar earlier near duplicate, or None after adding ``key``."""
        mh = self.minhash(text, lang)
        dups = self.query(mh, min_jaccard)
        if dups:
            return dups[0]
        self.add(key, mh)
        return None

    def _check(self, mh: MinHash) -> None:
        if len(mh) != self.num_perm or mh.seed != self.seed or mh.scheme != SCHEME:
            raise ValueError(
                f"MinHash must have num_perm={self.num_perm}, seed={self.seed}, "
                f"scheme={SCHEME!r}; got {len(mh)}, {mh.seed}, {mh.scheme!r}"
            )

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write keys and signatures to ``path`` (.npz) atomically (tmp file + rename)."""
        path = Path(path)
        sigs = np.stack(self._sigs) if self._sigs else np.empty((0, self.num_perm), np.uint32)
        meta = np.array(
            [_FORMAT_VERSION, self.bands, self.rows, self.seed, self.ngram], dtype=np.int64
        )
        with replacing(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                meta=meta,
                scheme=np.array(SCHEME),
                keys=np.array(self._keys, dtype=str),
                signatures=sigs,
            )
            fh.flush()
            os.fsync(fh.fileno())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NearDedupIndex:
        """Rebuild an index written by :meth:`save` (same parameters, same keys)."""
        with np.load(path, allow_pickle=False) as data:
            version, bands, rows, seed, ngram = (int(x) for x in data["meta"])
            if version != _FORMAT_VERSION or str(data["scheme"]) != SCHEME:
                raise ValueError(f"unsupported near-dedup index format in {path}")
            keys = [str(k) for k in data["keys"]]
            sigs = data["signatures"]
        index = cls(bands=bands, rows=rows, seed=seed, ngram=ngram)
        for key, sig in zip(keys, sigs, strict=True):
            index.add(key, index.from_signature(sig))
        return index
