"""Generate a benchmark corpus: English and Chinese JSONL with exact and near duplicates.

Documents are recombined from the sample corpus (stdlib docstrings, the bilingual
set): sentences are drawn and shuffled per document, so texts are real prose but
mostly unique. 4% of documents are exact copies and 4% near copies (one sentence
changed) of earlier ones, so both dedup stages have work.

    python benchmarks/corpus_gen.py --mb 500 --out benchmarks/out/corpus_500mb
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from lmops.corpus.sample import BILINGUAL, stdlib_docstring_records


def _sentence_pools() -> tuple[list[str], list[str]]:
    en, zh = [], []
    for rec in stdlib_docstring_records():
        en += [s.strip() for s in re.split(r"(?<=[.!?])\s+", rec["text"]) if len(s) > 30]
    for line in BILINGUAL.read_text("utf-8").splitlines():
        rec = json.loads(line)
        if rec["lang"] == "zh":
            zh += [s + "。" for s in rec["text"].split("。") if len(s) > 8]
        else:
            en += [s.strip() for s in re.split(r"(?<=[.!?])\s+", rec["text"]) if len(s) > 30]
    return en, zh


def generate(
    out: Path, megabytes: int, zh_share: float = 0.3, seed: int = 0, shards: int = 8
) -> list[Path]:
    """Write ~``megabytes`` MB as ``shards`` JSONL files into ``out``; returns their paths."""
    shard_bytes = (megabytes << 20) // shards
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    en, zh = _sentence_pools()
    target, written, shard, n = megabytes << 20, 0, 0, 0
    recent: list[dict] = []
    paths: list[Path] = []
    fh = None
    while written < target:
        if fh is None or fh.tell() > shard_bytes:
            if fh:
                fh.close()
            paths.append(out / f"shard-{shard:04d}.jsonl")
            fh, shard = paths[-1].open("w", encoding="utf-8"), shard + 1
        roll = rng.random()
        if recent and roll < 0.04:
            doc = dict(rng.choice(recent), id=f"doc-{n}")
        elif recent and roll < 0.08:
            base = rng.choice(recent)
            parts = base["text"].split("\n")
            parts[rng.randrange(len(parts))] = rng.choice(zh if base["lang"] == "zh" else en)
            doc = dict(base, id=f"doc-{n}", text="\n".join(parts))
        else:
            is_zh = rng.random() < zh_share
            pool, k = (zh, rng.randint(12, 40)) if is_zh else (en, rng.randint(8, 30))
            paras = [
                "".join(rng.sample(pool, 4)) if is_zh else " ".join(rng.sample(pool, 4))
                for _ in range(max(1, k // 4))
            ]
            doc = {
                "id": f"doc-{n}",
                "text": "\n".join(paras),
                "lang": "zh" if is_zh else "en",
                "source": "bench",
                "license": "mixed",
            }
            recent = (recent + [doc])[-500:]
        line = json.dumps(doc, ensure_ascii=False) + "\n"
        fh.write(line)
        written += len(line.encode("utf-8"))
        n += 1
    fh.close()
    return paths


def generate_short(
    out: Path, documents: int, zh_share: float = 0.3, seed: int = 0, shards: int = 8
) -> list[Path]:
    """Write ``documents`` short documents (two English or three Chinese sentences, about
    340 bytes a JSONL line) as ``shards`` files: 5% exact copies and 5% near copies (one
    word appended) of recent ones. Per-document costs dominate here, as in a crawl of
    short pages."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    en, zh = _sentence_pools()
    recent: list[dict] = []
    paths = [out / f"short-{s:04d}.jsonl" for s in range(shards)]
    handles = [p.open("w", encoding="utf-8") for p in paths]
    for n in range(documents):
        roll = rng.random()
        if recent and roll < 0.05:
            doc = dict(rng.choice(recent), id=f"s-{n}")
        elif recent and roll < 0.10:
            base = rng.choice(recent)
            extra = "又" if base["lang"] == "zh" else " again"
            doc = dict(base, id=f"s-{n}", text=base["text"] + extra)
        else:
            is_zh = rng.random() < zh_share
            # Two English or three Chinese sentences: enough combinations that chance
            # copies stay rare at a million documents (the pools hold ~10k and ~1k).
            text = "".join(rng.sample(zh, 3)) if is_zh else " ".join(rng.sample(en, 2))
            doc = {
                "id": f"s-{n}",
                "text": text,
                "lang": "zh" if is_zh else "en",
                "source": "bench-short",
                "license": "mixed",
            }
            recent = (recent + [doc])[-500:]
        handles[n * shards // documents].write(json.dumps(doc, ensure_ascii=False) + "\n")
    for fh in handles:
        fh.close()
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/corpus"))
    args = ap.parse_args()
    files = generate(args.out, args.mb)
    print(f"wrote {len(files)} shards, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB")
