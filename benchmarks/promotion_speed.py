"""How long a promotion decision and a history query take, with 1,000 versions on record.

    .venv/bin/python benchmarks/promotion_speed.py [--versions 1000] [--repeats 5]

A fresh SQLite MLflow store (embedded mode; a server adds its round trips) gets one
registered model with N versions carrying evidence tags, each promoted to @staging
once through the real gate, so the audit experiment holds N events. Then it times,
median of the repeats:

* one more ``promote`` (lock, evidence read and digest check, decide, alias move,
  event record, version-page history): the "decision" the issue bounds at 1 s;
* ``history.events`` over all N events, as ``lmops history`` reads them;
* the ``lmops history --json`` command end to end (includes Python start-up; it reads
  the SQLite store with SQL, without importing mlflow);
* the same two against ``mlflow server`` on the same store (the REST path, which does
  not import mlflow either); the command's JSON must equal the embedded one's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
    lmops = str(Path(sys.executable).with_name("lmops"))

    def command(env: dict) -> tuple[list[float], str]:
        times, out = [], ""
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = subprocess.run(
                [lmops, "history", "bench", "--json"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            times.append(time.perf_counter() - t)
        return times, out

    cli_s, embedded_json = command(dict(os.environ))
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            "5987",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = "http://127.0.0.1:5987"
        _wait(url + "/health")
        os.environ["MLFLOW_TRACKING_URI"] = url
        mlflow.set_tracking_uri(url)
        for _ in range(4):  # the server's workers each open the store on first use
            history.events("bench")
        rest_s = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            history.events("bench")
            rest_s.append(time.perf_counter() - t)
        srv_s, server_json = command({**os.environ, "MLFLOW_TRACKING_URI": url})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    same = json.loads(server_json) == json.loads(embedded_json)

    def med(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s"

    print(f"promotion decision (promote, end to end):   {med(decide_s)}")
    print(f"history.events over {n} events, embedded:   {med(hist_s)}")
    print(f"`lmops history --json`, embedded:            {med(cli_s)}")
    print(f"history.events over REST (mlflow server):    {med(rest_s)}")
    print(f"`lmops history --json` against the server:  {med(srv_s)}")
    print(f"same events both ways: {same}")


def _wait(url: str, timeout: float = 120) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


if __name__ == "__main__":
    main()
