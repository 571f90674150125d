"""Ingest on Ray Data against the local pool: time, driver memory and the same decisions.

Each run is a fresh process ingesting one generated corpus (``corpus_gen``: real
sentences recombined, 4% exact and 4% near copies) into a new datasets root, either on
the local pool or with ``RAY_ADDRESS`` set (``local`` starts a Ray on this machine; pass
``--address auto`` for the cluster of ``lmops services up``). Both sides do the same
work; the benchmark checks they publish the same version id, content digest and
quarantine reasons, then reports the median of ``--repeats`` runs and the ratio
local/Ray (above 1: Ray is faster), at ``--mb`` and (median of ``--large-repeats``) at
4x ``--mb``. It also reports, at both sizes on Ray, the driver's peak RSS (the driver
holds only O(partitions) state, so it should not grow with the corpus) and the largest
peak RSS, and RSS less shared pages, of any Ray worker process on this machine (bounded
by the block size, not the corpus).

    python benchmarks/ingest_on_ray.py --mb 50 --repeats 3 --large-repeats 3
    python benchmarks/ingest_on_ray.py --short-docs 250000 --sides ray --large-repeats 3 \\
        --address 127.0.0.1:6380   # driver memory at 4x the documents on the cluster

``--short-docs N`` measures N and 4N short documents instead (per-document state is
what a driver-side design would hold); ``--sides ray`` skips the local pool, and then the
decision check compares the Ray runs with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).parent

CHILD = r"""
import json, os, resource, sys, time
from collections import Counter
from pathlib import Path
import pyarrow.parquet as pq
from lmops.config import DataConfig
from lmops.data.ingest import ingest
corpus, root, short = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "short"
cfg = (DataConfig(quality_rules=False) if short else
       DataConfig(quality_overrides={"en": {"min_words": 5}, "zh": {"min_chars": 10}}))
t = time.perf_counter()
rep = ingest([corpus], cfg, root, data_docs=False)
secs = time.perf_counter() - t
m = json.loads((rep.path / "manifest.json").read_text())
reasons = Counter(r for f in m["quarantine_files"]
                  for r in pq.read_table(rep.path / f, columns=["reason"]).column(0).to_pylist())
print(json.dumps({"seconds": secs, "version": rep.version_id, "digest": m["content_digest"],
                  "accepted": rep.accepted, "reasons": reasons, "stages": rep.stage_seconds,
                  "executor": rep.executor,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def worker_peaks(stop: threading.Event, peaks: dict[int, tuple[int, int]]) -> None:
    """Peak (RSS, RSS less shared pages) of every Ray worker process on this machine
    (``ray::`` titles, not agents). RSS counts the object-store pages a worker touched;
    RSS less shared is its private memory."""
    import psutil

    while not stop.is_set():
        for p in psutil.process_iter(["cmdline", "memory_info"]):
            cmd, mem = p.info["cmdline"], p.info["memory_info"]
            # Workers title themselves ray::IDLE or ray::<task>; Ray's agents do too.
            if cmd and mem and cmd[0].startswith("ray::") and "Agent" not in cmd[0]:
                rss, private = peaks.get(p.pid, (0, 0))
                peaks[p.pid] = (max(rss, mem.rss), max(private, mem.rss - mem.shared))
        stop.wait(0.5)


def run(corpus: Path, work: Path, address: str | None, short: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    if address:
        env["RAY_ADDRESS"] = address
    root = Path(tempfile.mkdtemp(dir=work))
    stop, peaks = threading.Event(), {}
    sampler = threading.Thread(target=worker_peaks, args=(stop, peaks), daemon=True)
    sampler.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(corpus), str(root), "short" if short else "long"],
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        stop.set()
        sampler.join()
    if out.returncode:
        sys.exit(f"ingest failed ({corpus}, RAY_ADDRESS={address}):\n{out.stderr[-3000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["worker_peak_rss_mb"] = round(max((r for r, _ in peaks.values()), default=0) / 2**20)
    rec["worker_peak_private_mb"] = round(max((p for _, p in peaks.values()), default=0) / 2**20)
    rec["workers_seen"] = len(peaks)
    shutil.rmtree(root, ignore_errors=True)  # the published copy is not needed again
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument(
        "--short-docs",
        type=int,
        help="instead of --mb: this many short documents (corpus_gen.generate_short; "
        "quality rules off) and 4x as many",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large-repeats", type=int, default=1, help="repeats at 4x --mb")
    ap.add_argument("--sides", default="local,ray", help="local,ray or ray alone")
    ap.add_argument("--address", default="local", help="RAY_ADDRESS for the Ray side")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ingest_on_ray")
    args = ap.parse_args()
    if min(args.repeats, args.large_repeats) < 1:
        ap.error("--repeats and --large-repeats must be at least 1")
    sys.path.insert(0, str(HERE))
    from corpus_gen import generate, generate_short

    args.out.mkdir(parents=True, exist_ok=True)
    short = args.short_docs is not None
    base, unit = (args.short_docs, "docs") if short else (args.mb, "MB")
    sizes = (f"{base}{unit}", f"{4 * base}{unit}")
    sides = [s for s in args.sides.split(",") if s in ("local", "ray")]
    result = {"sizes": sizes, "address": args.address, "sides": sides, "runs": {}}
    for i, size in enumerate(sizes):
        corpus = args.out / f"corpus_{size}"
        if not corpus.exists():
            n = base * 4**i
            generate_short(corpus, n) if short else generate(corpus, n)
        for side in sides:
            reps = args.repeats if i == 0 else args.large_repeats
            address = args.address if side == "ray" else None
            runs = [run(corpus, args.out, address, short) for _ in range(reps)]
            result["runs"][f"{side}@{size}"] = runs
            secs = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            worker = max(r["worker_peak_rss_mb"] for r in runs)
            private = max(r.get("worker_peak_private_mb", 0) for r in runs)
            print(
                f"{side:5s} {size:>10s}  median {secs:7.1f} s  driver peak RSS {rss:6.0f} MB  "
                f"Ray worker peak RSS {worker:6.0f} MB (private {private:.0f} MB)",
                flush=True,
            )

    def key(r):
        return r["version"], r["digest"], r["reasons"]

    def median_s(name):
        return statistics.median(r["seconds"] for r in result["runs"][name])

    same = True
    for size in sizes:
        runs = [r for side in sides for r in result["runs"][f"{side}@{size}"]]
        same &= all(key(r) == key(runs[0]) for r in runs)
    print(f"same decisions in every run ({' and '.join(sides)}), at each size: {same}")
    result["same_decisions"] = same
    if sides == ["local", "ray"]:
        for size, reps in zip(sizes, (args.repeats, args.large_repeats), strict=True):
            ratio = median_s(f"local@{size}") / median_s(f"ray@{size}")
            result[f"local_over_ray@{size}"] = ratio
            print(f"local/Ray time ratio at {size} (medians of {reps}): {ratio:.2f}x")
    if "ray" in sides:
        small, big = (max(r["peak_rss_mb"] for r in result["runs"][f"ray@{s}"]) for s in sizes)
        result["driver_rss_growth_4x"] = big / small - 1
        print(
            f"Ray driver peak RSS: {small:.0f} MB at {sizes[0]}, {big:.0f} MB at 4x "
            f"({100 * (big / small - 1):+.1f}%)"
        )
        for what in ("rss", "private"):
            peak = [
                max(r[f"worker_peak_{what}_mb"] for r in result["runs"][f"ray@{s}"]) for s in sizes
            ]
            result[f"worker_peak_{what}_mb"] = dict(zip(sizes, peak, strict=True))
            print(f"Ray worker peak {what}: {peak[0]:.0f} MB at {sizes[0]}, {peak[1]:.0f} MB at 4x")
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    if not same:
        sys.exit("the runs decided differently")


if __name__ == "__main__":
    main()
