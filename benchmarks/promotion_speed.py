"""How long a promotion decision and a history query take, with 1,000 versions on record.

    .venv/bin/python benchmarks/promotion_speed.py [--versions 1000] [--repeats 5]

A fresh SQLite MLflow store (embedded mode; a server adds its round trips) gets one
registered model with N versions, each made as the pipeline makes one (here: a small
folder of files, signed with ``sign_version``, as tests/conftest.py ``add_version``
does) and promoted to @staging once through the real gate, so the audit experiment
holds N events. Then it times, median of the repeats:

* one more ``promote`` (lock, signed-evidence check including the download and hash of
  the version's small files, decide, signed alias move, event record, version-page
  history): the "decision" the issue bounds at 1 s;
* ``history_read.events`` over all N events, as ``lmops history`` reads them;
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

from registry_evidence import GOOD, same  # benchmarks/ is on sys.path


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

    from model_registry import history_read
    from model_registry import tags as T
    from model_registry.promotion import promote
    from model_registry.signed_evidence import Author, sign_version

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    client.create_registered_model("bench")
    files_root = home / "version-files"
    pipeline = Author("pipeline", False, "local, no authentication")
    lineage = {T.DATA_VALIDATION: "passed", T.DATASET_VERSION: "ds-bench"}

    def new_version() -> str:
        """A version with signed evidence, as tests/conftest.py ``add_version`` makes one."""
        files = Path(tempfile.mkdtemp(prefix="v-", dir=files_root))
        (files / "config.json").write_text('{"model_type": "llama"}')
        (files / "model.safetensors").write_bytes(os.urandom(256))
        mv = client.create_model_version("bench", source=files.as_uri())
        sign_version("bench", str(mv.version), GOOD, "es-bench", lineage, pipeline)
        return str(mv.version)

    files_root.mkdir()
    t0 = time.perf_counter()
    for _ in range(args.versions):
        promote("bench", new_version(), "staging", rescore=same)
    took = time.perf_counter() - t0
    print(f"setup: {args.versions} versions signed and promoted in {took:.0f} s")

    decide_s = []
    for _ in range(args.repeats):
        version = new_version()
        t = time.perf_counter()
        out = promote("bench", version, "staging", rescore=same)
        decide_s.append(time.perf_counter() - t)
        assert out.decision.passed, out.decision.reasons
    hist_s = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        n = len(history_read.events("bench"))
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
            history_read.events("bench")
        rest_s = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            history_read.events("bench")
            rest_s.append(time.perf_counter() - t)
        srv_s, server_json = command({**os.environ, "MLFLOW_TRACKING_URI": url})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    agree = json.loads(server_json) == json.loads(embedded_json)

    def med(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s"

    print(f"promotion decision (promote, end to end):   {med(decide_s)}")
    print(f"history_read.events over {n} events, embedded: {med(hist_s)}")
    print(f"`lmops history --json`, embedded:            {med(cli_s)}")
    print(f"history_read.events over REST (mlflow server):  {med(rest_s)}")
    print(f"`lmops history --json` against the server:  {med(srv_s)}")
    print(f"same events both ways: {agree}")


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
