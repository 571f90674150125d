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
corpus, root = sys.argv[1], Path(sys.argv[2])
cfg = DataConfig(quality_overrides={"en": {"min_words": 5}, "zh": {"min_chars": 10}})
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


def run(corpus: Path, work: Path, address: str | None) -> dict:
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
            [sys.executable, "-c", CHILD, str(corpus), str(root)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        stop.set()
        sampler.join()
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["worker_peak_rss_mb"] = round(max((r for r, _ in peaks.values()), default=0) / 2**20)
    rec["worker_peak_private_mb"] = round(max((p for _, p in peaks.values()), default=0) / 2**20)
    rec["workers_seen"] = len(peaks)
    shutil.rmtree(root, ignore_errors=True)  # the published copy is not needed again
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large-repeats", type=int, default=1, help="repeats at 4x --mb")
    ap.add_argument("--address", default="local", help="RAY_ADDRESS for the Ray side")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ingest_on_ray")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from corpus_gen import generate

    args.out.mkdir(parents=True, exist_ok=True)
    result = {"mb": args.mb, "address": args.address, "runs": {}}
    for mb in (args.mb, 4 * args.mb):
        corpus = args.out / f"corpus_{mb}mb"
        if not corpus.exists():
            generate(corpus, mb)
        sides = {"local": None, "ray": args.address}
        for side, address in sides.items():
            reps = args.repeats if mb == args.mb else args.large_repeats
            runs = [run(corpus, args.out, address) for _ in range(reps)]
            result["runs"][f"{side}@{mb}MB"] = runs
            secs = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            worker = max(r["worker_peak_rss_mb"] for r in runs)
            private = max(r.get("worker_peak_private_mb", 0) for r in runs)
            print(
                f"{side:5s} {mb:4d} MB  median {secs:7.1f} s  driver peak RSS {rss:6.0f} MB  "
                f"Ray worker peak RSS {worker:6.0f} MB (private {private:.0f} MB)"
            )
    local, ray = result["runs"][f"local@{args.mb}MB"], result["runs"][f"ray@{args.mb}MB"]

    def key(r):
        return r["version"], r["digest"], r["reasons"]

    big_runs = result["runs"][f"local@{4 * args.mb}MB"] + result["runs"][f"ray@{4 * args.mb}MB"]
    same = all(key(a) == key(local[0]) for a in local + ray) and all(
        key(a) == key(big_runs[0]) for a in big_runs
    )
    ratio = statistics.median(r["seconds"] for r in local) / statistics.median(
        r["seconds"] for r in ray
    )
    big_ray = result["runs"][f"ray@{4 * args.mb}MB"]
    big_local = statistics.median(r["seconds"] for r in result["runs"][f"local@{4 * args.mb}MB"])
    big_ratio = big_local / statistics.median(r["seconds"] for r in big_ray)
    print(
        f"local/Ray time ratio at {4 * args.mb} MB (median of {args.large_repeats}): "
        f"{big_ratio:.2f}x"
    )
    result["local_over_ray_4x"] = big_ratio
    big = max(r["peak_rss_mb"] for r in big_ray)
    small = max(r["peak_rss_mb"] for r in ray)
    for what in ("rss", "private"):
        peak = [max(r[f"worker_peak_{what}_mb"] for r in rs) for rs in (ray, big_ray)]
        result[f"worker_peak_{what}_mb"] = {f"{args.mb}MB": peak[0], f"{4 * args.mb}MB": peak[1]}
        print(f"Ray worker peak {what}: {peak[0]:.0f} MB at {args.mb} MB, {peak[1]:.0f} MB at 4x")
    result |= {"same_decisions": same, "local_over_ray": ratio, "rss_growth_4x": big / small - 1}
    print(f"same decisions on both sides, at {args.mb} and {4 * args.mb} MB: {same}")
    print(f"local/Ray time ratio (median): {ratio:.2f}x (above 1: Ray faster)")
    print(f"driver peak RSS growth at 4x the corpus on Ray: {100 * (big / small - 1):+.1f}%")
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    if not same:
        sys.exit("the two paths decided differently")


if __name__ == "__main__":
    main()
