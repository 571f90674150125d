"""Ingest throughput: lmops vs datatrove, GX share, tokenization vs raw tokenizers, RSS.

    .venv/bin/python benchmarks/ingest_throughput.py            # 500 MB + 50 MB (~20 min)
    .venv/bin/python benchmarks/ingest_throughput.py --mb 50 --small-mb 10   # quick look

Needs the bench extra: ``pip install -e '.[bench]'`` (datatrove, spaCy for its word
tokenizer, xxhash). Every figure below is measured in this one run on this machine;
the ratios print side by side at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def run_ours(corpus: str, datasets: str, workers: int) -> dict:
    """One lmops ingest (all five stages) in this process; prints JSON."""
    from lmops.home import prepare_environment

    prepare_environment()
    from lmops.config import DataConfig
    from lmops.data.ingest import ingest

    t = time.perf_counter()
    rep = ingest([corpus], DataConfig(workers=workers), Path(datasets))
    total = time.perf_counter() - t
    own, kids = _rss_mb()
    return {
        "seconds": total,
        "stage_seconds": rep.stage_seconds,
        "input": rep.input,
        "accepted": rep.accepted,
        "bytes": rep.input_bytes,
        "path": str(rep.path),
        "rss_driver_mb": own,
        "rss_worker_mb": kids,
        "balanced": rep.balanced,
        "reasons": dict(rep.reasons),
    }


def _subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def tokenization(version: Path, work: Path) -> dict:
    """lmops' token-shard build vs a bare ``encode_batch`` loop over the same texts."""
    from lmops.config import TokenizerConfig
    from lmops.data.ingest import iter_texts
    from lmops.data.tokenize import ENCODE_BATCH, build_token_shards
    from lmops.tokenizer import load_tokenizer, train_or_reuse

    folder, tok_id, _ = train_or_reuse(
        lambda: (t for _, t in iter_texts(version)),
        TokenizerConfig(vocab_size=8192),
        version.name,
        work / "tok",
    )
    texts = [t for _, t in iter_texts(version)]
    tok = load_tokenizer(folder).backend_tokenizer
    t = time.perf_counter()
    n_raw = 0
    for i in range(0, len(texts), ENCODE_BATCH):  # lmops' batch size: a like-for-like baseline
        batch = texts[i : i + ENCODE_BATCH]
        n_raw += sum(len(e.ids) for e in tok.encode_batch(batch, add_special_tokens=False))
    raw = time.perf_counter() - t
    t = time.perf_counter()
    shards = build_token_shards(version, folder, tok_id, 0.05, work / "tokens")
    ours = time.perf_counter() - t
    n_ours = shards.train_tokens + shards.val_tokens
    return {
        "raw_tokens_per_s": n_raw / raw,
        "ours_tokens_per_s": n_ours / ours,
        "tokens": n_ours,
        "raw_tokens": n_raw,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=500, help="large corpus for lmops and RSS")
    ap.add_argument("--small-mb", type=int, default=50, help="corpus both tools run on")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--worker-ours", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_ours:
        print(json.dumps(run_ours(*args.worker_ours, args.workers)))
        return

    from corpus_gen import generate
    from datatrove_baseline import run_datatrove

    out = args.out
    corpora = {}
    for mb in (args.small_mb, args.mb):
        path = out / f"corpus_{mb}mb"
        if not (path / "done").exists():
            shutil.rmtree(path, ignore_errors=True)
            generate(path, mb)
            (path / "done").write_text("ok")
        corpora[mb] = path
    results = {}
    for mb, path in corpora.items():
        ds = out / f"datasets_{mb}mb"
        shutil.rmtree(ds, ignore_errors=True)
        print(f"lmops ingest on {mb} MB ...", flush=True)
        results[mb] = _subprocess(["--worker-ours", str(path), str(ds)])
    work = out / "datatrove_work"
    shutil.rmtree(work, ignore_errors=True)
    print(f"datatrove on {args.small_mb} MB ...", flush=True)
    dt = run_datatrove(corpora[args.small_mb], work, args.workers)
    print("tokenization ...", flush=True)
    shutil.rmtree(out / "tok_work", ignore_errors=True)  # cached shards would time nothing
    tok = tokenization(Path(results[args.small_mb]["path"]), out / "tok_work")

    small, large = results[args.small_mb], results[args.mb]
    mbs = lambda r: r["bytes"] / 1e6 / r["seconds"]  # noqa: E731
    dt_mbs = (
        sum(f.stat().st_size for f in corpora[args.small_mb].glob("*.jsonl")) / 1e6 / dt["seconds"]
    )
    print(f"\n=== ingest throughput, {args.workers} worker processes ===")
    print(f"{'':34}{'lmops':>12}{'datatrove':>12}{'ratio':>8}")
    print(
        f"{f'total MB/s ({args.small_mb} MB)':34}{mbs(small):12.3f}{dt_mbs:12.3f}"
        f"{mbs(small) / dt_mbs:8.2f}x"
    )
    print(f"{f'total MB/s ({args.mb} MB)':34}{mbs(large):12.3f}")
    for label, r in ((f"{args.small_mb} MB", small), (f"{args.mb} MB", large)):
        print(
            f"\nlmops stages on {label}: {r['input']} docs, {r['bytes'] / 1e6:.0f} MB, "
            f"{r['input'] / r['seconds']:.0f} docs/s, accounting balanced={r['balanced']}"
        )
        for stage, s in r["stage_seconds"].items():
            print(
                f"  {stage:10} {s:8.1f} s  {r['bytes'] / 1e6 / s:8.2f} MB/s  "
                f"{r['input'] / s:9.0f} docs/s"
            )
        gx = r["stage_seconds"]["validate"] / r["seconds"]
        print(f"  GX validation share of wall time: {gx:.1%}")
        print(
            f"  peak RSS: driver {r['rss_driver_mb']:.0f} MB, largest worker "
            f"{r['rss_worker_mb']:.0f} MB"
        )
    print(
        f"\ndatatrove stages on {args.small_mb} MB: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in dt["stage_seconds"].items())
    )
    print(
        f"\nRSS growth {args.small_mb} MB -> {args.mb} MB: driver "
        f"{small['rss_driver_mb']:.0f} -> {large['rss_driver_mb']:.0f} MB, worker "
        f"{small['rss_worker_mb']:.0f} -> {large['rss_worker_mb']:.0f} MB"
    )
    print(
        f"\ntokenization: lmops shards {tok['ours_tokens_per_s']:,.0f} tok/s vs raw "
        f"encode_batch {tok['raw_tokens_per_s']:,.0f} tok/s = "
        f"{tok['ours_tokens_per_s'] / tok['raw_tokens_per_s']:.2f}x "
        f"({tok['tokens']:,} tokens)"
    )
    (out / "ingest_throughput.json").write_text(
        json.dumps({"lmops": results, "datatrove": dt, "tokenization": tok}, indent=2)
    )


if __name__ == "__main__":
    main()
