"""How long a promotion decision and a history query take, with 1,000 versions on record.

    .venv/bin/python benchmarks/promotion_speed.py [--versions 1000] [--repeats 5]

A fresh SQLite MLflow store (embedded mode; a server adds its round trips) gets one
registered model with N versions carrying evidence tags, each promoted to @staging
once through the real gate, so the audit experiment holds N events. Then it times,
median of the repeats:

* one more ``promote`` (lock, evidence read and digest check, decide, alias move,
  event record, version-page history): the "decision" the issue bounds at 1 s;
* ``history.events`` over all N events, as ``lmops history`` reads them;
* the ``lmops history --json`` command end to end (includes Python start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOOD = {
    "eval/bits_per_byte": 2.0,
    "eval/unigram_bits_per_byte": 3.0,
    "eval/min_new_tokens": 5,
    "eval/tokens_scored": 1000,
    "safety/toxicity_rate": 0.0,
    "safety/flagged_rate": 0.05,
    "safety/pii_leak_rate": 0.0,
    "safety/canary_leak_rate": 0.0,
    "safety/memorisation_rate": 0.0,
}


def SAME(incumbent: str, eval_set: str) -> dict[str, float]:  # noqa: N802
    """The incumbent's re-scored metrics: the same evidence (no model is loaded here)."""
    return dict(GOOD)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lmops-bench-promo-")) / ".lmops"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    os.environ.update(LMOPS_HOME=str(home), MLFLOW_TRACKING_URI=uri)
    import mlflow
    from mlflow import MlflowClient

    from model_registry import history
    from model_registry import tags as T
    from model_registry.evidence import evidence_for_version
    from model_registry.promotion import promote

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    client.create_registered_model("bench")
    tags = {
        **evidence_for_version(GOOD, "es-bench"),
        T.DATA_VALIDATION: "passed",
        T.REGISTERED_BY: "pipeline",
    }
    t0 = time.perf_counter()
    versions = []
    for _ in range(args.versions):
        mv = client.create_model_version("bench", source="file:///nonexistent", tags=tags)
        versions.append(str(mv.version))
        promote("bench", versions[-1], "staging", rescore=SAME)
    print(f"setup: {args.versions} versions promoted in {time.perf_counter() - t0:.0f} s")

    decide_s = []
    for _ in range(args.repeats):
        mv = client.create_model_version("bench", source="file:///nonexistent", tags=tags)
        t = time.perf_counter()
        out = promote("bench", str(mv.version), "staging", rescore=SAME)
        decide_s.append(time.perf_counter() - t)
        assert out.decision.passed, out.decision.reasons
    hist_s = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        n = len(history.events("bench"))
        hist_s.append(time.perf_counter() - t)
    cli_s = []
    lmops = str(Path(sys.executable).with_name("lmops"))
    for _ in range(args.repeats):
        t = time.perf_counter()
        subprocess.run([lmops, "history", "bench", "--json"], check=True, capture_output=True)
        cli_s.append(time.perf_counter() - t)
    print(f"promotion decision (promote, end to end): median {statistics.median(decide_s):.3f} s")
    print(f"history.events over {n} events:          median {statistics.median(hist_s):.3f} s")
    print(f"`lmops history --json` command:          median {statistics.median(cli_s):.3f} s")


if __name__ == "__main__":
    main()
