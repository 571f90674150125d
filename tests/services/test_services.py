"""Against the real local services (`lmops services up`): deployments run by the Prefect
worker, MLflow server on PostgreSQL with basic-auth, Ray head + worker node.

Run with `make test-services` (CI: `.ci/run` starts the services first).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
import uuid

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import REPO

pytestmark = pytest.mark.services
DEPLOYMENT = "lmops-weekly-train/weekly-train"
NEEDED = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS", "MLFLOW_TRACKING_USERNAME")


@pytest.fixture(scope="module", autouse=True)
def services_env():
    missing = [k for k in NEEDED if not os.environ.get(k)]
    assert not missing, (
        f"services tests need {missing}: run `lmops services up` and "
        "`set -a; source $LMOPS_HOME/services.env; set +a`"
    )
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lmops"), "schedule"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def run_deployment(model_name: str, extra_env: dict | None = None, **params):
    from prefect.deployments import run_deployment as prefect_run

    parameters = {
        "config_name": "tiny",
        "overrides": [f"registry.model_name={model_name}"],
        **params,
    }
    job_vars = {"env": extra_env} if extra_env else None
    return prefect_run(DEPLOYMENT, parameters=parameters, timeout=1200, job_variables=job_vars)


def latest_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return art.data


def test_deployment_run_reaches_staging_on_the_services():
    name = f"svc-{uuid.uuid4().hex[:8]}"
    flow_run = run_deployment(name)
    assert flow_run.state.is_completed(), flow_run.state
    client = MlflowClient()
    mv = client.get_model_version_by_alias(name, "staging")
    run = client.get_run(mv.run_id)
    assert run.data.tags["lmops.ray_address"] == os.environ["RAY_ADDRESS"]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied artifacts
    assert "postgresql" not in os.environ["MLFLOW_TRACKING_URI"]  # we talk HTTP, not SQL
    pipe = mlflow.transformers.load_model(f"models:/{name}@staging")
    assert pipe("import os", max_new_tokens=3, do_sample=False)[0]["generated_text"]

    # Unchanged sources, config and code: the second scheduled run skips everything.
    again = run_deployment(name)
    assert again.state.is_completed(), again.state
    assert "cache hit" in latest_artifact("pipeline-summary")
    assert len(client.search_model_versions(f"name = '{name}'")) == 1


def test_mlflow_restart_mid_run_completes_without_duplicates():
    name = f"svc-restart-{uuid.uuid4().hex[:8]}"
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(
            run=run_deployment(
                name,
                overrides=[
                    f"registry.model_name={name}",
                    "train.max_steps=200",
                    "train.log_every=5",
                ],
            )
        )
    )
    runner.start()
    client = MlflowClient()
    deadline = time.time() + 600
    while time.time() < deadline:  # wait until training is logging metrics
        runs = client.search_runs(
            client.get_experiment_by_name("lmops").experiment_id,
            f"params.`registry.model_name` = '{name}'",
        )
        if runs and client.get_metric_history(runs[0].info.run_id, "train/loss"):
            break
        time.sleep(2)
    else:
        pytest.fail("the run never started training")
    script = REPO / "infra" / "local" / "mlflow.sh"
    subprocess.run(["bash", str(script), "stop"], check=True, timeout=120)
    time.sleep(5)
    subprocess.run(["bash", str(script), "start"], check=True, timeout=300)
    runner.join(timeout=1500)
    assert result["run"].state.is_completed(), result["run"].state
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    assert client.get_model_version_by_alias(name, "staging").version == versions[0].version


def test_failed_scheduled_run_leaves_artifact_and_calls_webhook(tmp_path):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    flow_run = run_deployment(
        f"svc-fail-{uuid.uuid4().hex[:8]}",
        extra_env={"LMOPS_NOTIFY_WEBHOOK": url},
        sources=[str(tmp_path / "missing.jsonl")],
    )
    server.shutdown()
    assert flow_run.state.is_failed()
    assert "does not exist" in latest_artifact("failure")
    assert received and "does not exist" in received[-1]["text"]
    assert received[-1]["flow_run_id"]


def test_two_workers_train_on_the_two_ray_nodes():
    # `lmops services up` starts a head and a worker node with one CPU each, so Ray must
    # place one training worker on each; the run records the nodes its ranks ran on.
    name = f"svc-ddp-{uuid.uuid4().hex[:8]}"
    flow_run = run_deployment(
        name,
        overrides=[f"registry.model_name={name}", "train.num_workers=2"],
    )
    assert flow_run.state.is_completed(), flow_run.state
    client = MlflowClient()
    (mv,) = client.search_model_versions(f"name = '{name}'")
    run = client.get_run(mv.run_id)
    assert run.data.params["train.num_workers"] == "2"
    nodes = json.loads(run.data.tags["lmops.ray_nodes"])
    assert len(nodes) == 2 and len(set(nodes)) == 2, nodes  # rank -> Ray node id
    assert run.info.status == "FINISHED" and run.data.metrics["train/loss"] > 0
