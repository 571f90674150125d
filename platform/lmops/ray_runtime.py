"""One way to join Ray: ``RAY_ADDRESS`` (a cluster) or a local Ray, started once.

Training and the Ray Data ingest path both call ``ensure_ray`` so that Ray workers
always get the variables they need (MLflow credentials, LMOPS_HOME), whichever
stage happens to start Ray first.
"""

from __future__ import annotations

import os

# Variables the Ray workers need to behave like the driver.
PROPAGATE = (
    "LMOPS_HOME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "HF_HUB_OFFLINE",
    "MLFLOW_DISABLE_TELEMETRY",
    "LMOPS_FAULT_AT_STEP",
    "LMOPS_FAULT_ANNOTATE",
    "TOKENIZERS_PARALLELISM",
    "RAY_TRAIN_V2_ENABLED",
    "GX_ANALYTICS_ENABLED",
    "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL",
)


def ensure_ray() -> None:
    """Connect to ``RAY_ADDRESS`` or start local Ray, once per process."""
    import ray

    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in PROPAGATE if k in os.environ}
    # Ray starts its workers at niceness 15, behind its own daemons; lmops' workers are
    # the job (training, ingest), so they run at 0, as Ray's job supervisor sets for its
    # own actor. A value the user exports wins. Ray spells the variable in lower case.
    nice = os.environ.get("RAY_worker_niceness", "0")  # noqa: SIM112
    env["RAY_worker_niceness"] = nice
    address = os.environ.get("RAY_ADDRESS") or None
    # A local Ray (no RAY_ADDRESS) has no dashboard and nobody to scrape its Prometheus
    # metrics, whose collection took about a tenth of a core while idle on 2 cores: off.
    # A cluster keeps its operator's settings.
    local = {"_system_config": {"enable_metrics_collection": False}} if address is None else {}
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=True,
        logging_level="ERROR",
        runtime_env={"env_vars": env},
        **local,
    )
