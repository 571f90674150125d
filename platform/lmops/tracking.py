"""MLflow set-up shared by every stage: the tracking store and the experiment.

Embedded: SQLite in ``LMOPS_HOME`` with artifacts in ``LMOPS_HOME/mlartifacts``
(never a ``./mlruns`` that depends on the working directory). With
``MLFLOW_TRACKING_URI`` set, the server decides where artifacts live.
"""

from __future__ import annotations

import mlflow

from lmops.home import Home


def configure_mlflow(h: Home, experiment: str) -> str:
    """Point MLflow at the home's store, create the experiment; return its id."""
    mlflow.set_tracking_uri(h.tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        location = h.artifacts.as_uri() if h.embedded_mlflow else None
        try:
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created concurrently
            exp_id = mlflow.get_experiment_by_name(experiment).experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
