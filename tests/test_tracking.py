"""``lmops.tracking``: a new home's MLflow store is created by a child process started early."""

from __future__ import annotations

import json

from conftest import run_python

_SCRIPT = """
import json, sys
from lmops import tracking
from lmops.home import prepare_environment

h = prepare_environment()
tracking.create_store_in_background(h)
child = tracking._store_creation
assert "mlflow" not in sys.modules  # the CLI starts it before anything heavy is loaded
child.wait()
made_by_child = h.mlflow_db.is_file()
exp_id = tracking.configure_mlflow(h, "probe")
import mlflow
with mlflow.start_run() as run:
    mlflow.log_metric("x", 1.0)
after = tracking._store_creation is None
tracking.create_store_in_background(h)  # the store exists now: no second child
json.dump({"child": child.returncode, "made_by_child": made_by_child, "exp_id": exp_id,
           "after": after, "again": tracking._store_creation is None,
           "experiments": {e.name: e.artifact_location for e in mlflow.search_experiments()}},
          sys.stdout)
"""


def test_new_home_store_is_created_by_a_child_then_used(tmp_path):
    home = tmp_path / ".lmops"
    proc = run_python(_SCRIPT, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["child"] == 0 and out["made_by_child"]  # configure_mlflow then used it
    assert out["after"] and out["again"]  # an existing store starts no second child
    assert set(out["experiments"]) == {"Default", "probe"}
    assert all(str(home / "mlartifacts") in loc for loc in out["experiments"].values())
    assert not (tmp_path / "mlruns").exists()
