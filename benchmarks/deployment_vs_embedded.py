"""Real services vs embedded defaults: service start time, and one tiny end-to-end run
through a Prefect deployment (worker, MLflow on PostgreSQL, Ray cluster) against the same
run on embedded defaults (SQLite MLflow, ephemeral Prefect, local Ray).

    .venv/bin/python benchmarks/deployment_vs_embedded.py     # stops services first
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVICE_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "PREFECT_API_URL",
    "RAY_ADDRESS",
)


def _lmops(*args, env=None) -> float:
    t = time.perf_counter()
    subprocess.run(
        [str(BIN / "lmops"), *args], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def main() -> None:
    home = Path(os.environ.get("LMOPS_HOME", REPO / ".lmops")).resolve()
    base = {**os.environ, "LMOPS_HOME": str(home)}
    _lmops("services", "down", env=base)
    up = _lmops("services", "up", env=base)
    env_file = home / "services.env"
    svc = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    served = {**base, **svc}
    _lmops("schedule", env=served)

    embedded = {k: v for k, v in base.items() if k not in SERVICE_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        embedded["LMOPS_HOME"] = str(Path(tmp) / ".lmops")
        t_embedded = _lmops("run", "--config", "tiny", env=embedded)

    name = f"bench-{uuid.uuid4().hex[:8]}"
    code = (
        "from prefect.deployments import run_deployment as r; import sys;"
        f"fr = r('lmops-weekly-train/weekly-train', parameters={{'config_name': 'tiny',"
        f"'overrides': ['registry.model_name={name}']}}, timeout=1800);"
        "sys.exit(0 if fr.state.is_completed() else 1)"
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=served, cwd=REPO)
    t_deployed = time.perf_counter() - t

    print("\n=== real services vs embedded defaults (config tiny, 2 cores) ===")
    print(f"services up (PostgreSQL, MLflow, Ray head+worker, Prefect server+worker): {up:.1f} s")
    print(f"{'':40}{'seconds':>10}")
    print(f"{'embedded: lmops run --config tiny':40}{t_embedded:10.1f}")
    print(f"{'deployment run via worker + services':40}{t_deployed:10.1f}")
    print(f"{'ratio deployment / embedded':40}{t_deployed / t_embedded:10.2f}x")


if __name__ == "__main__":
    main()
