"""Ingest on the real two-node Ray cluster (`lmops services up`) with a worker killed
mid-stage: Ray retries the task, nothing partial is left, and the decisions and dataset
id equal the local pool's on the same inputs (those of tests/data/test_ray_ingest.py)."""

from __future__ import annotations

import json
import os

import pytest

from conftest import REPO, run_python

pytestmark = pytest.mark.services

INGEST = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # tests/data: the planted inputs and the outcome's shape
from test_ray_ingest import CFG, _inputs, _outcome
from lmops.data import file_shards
from lmops.data.ingest import ingest
file_shards.SHARD_BYTES = 4096  # the planted file is read as many ranges, by many tasks
tmp = Path(sys.argv[2])
first, _ = _inputs(tmp)
rep = ingest(first, CFG, tmp / sys.argv[3])
# Ray prints its own warnings to stdout (raylet lines, even at exit): tag the result.
print("RESULT", json.dumps(_outcome(rep) | {"executor": rep.executor}), flush=True)
"""


def _ingest(tmp_path, root: str, env: dict) -> dict:
    proc = run_python(
        INGEST,
        tmp_path / "home",
        str(REPO / "tests" / "data"),
        str(tmp_path),
        root,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_a_worker_killed_on_the_cluster_changes_no_decision(tmp_path):
    import ray

    assert os.environ.get("RAY_ADDRESS"), "run `lmops services up` and source services.env"
    local = _ingest(tmp_path, "local", {"RAY_ADDRESS": ""})
    marker = tmp_path / "killed"
    on_ray = _ingest(tmp_path, "ray", {"LMOPS_FAULT_ANNOTATE": str(marker)})
    assert local["executor"]["kind"] == "local"
    assert on_ray["executor"] == {**on_ray["executor"], "kind": "ray", "nodes": 2}
    ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
    try:
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
    assert marker.read_text() in alive  # a cluster worker died mid-annotate, and was retried
    assert not list((tmp_path / "ray").glob(".staging-*"))  # nothing partial left
    for side in (local, on_ray):
        side.pop("executor")
    assert on_ray == local
