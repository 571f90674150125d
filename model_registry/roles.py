"""The grants that make separation of duties hold on an MLflow basic-auth server.

MLflow decides each request from the caller's permission on the resource: READ, USE,
EDIT, MANAGE (or DENY) on an experiment (by id) or a registered model (by name). A user
without a grant gets the server's ``default_permission`` (READ in
``infra/local/mlflow.sh``), and whoever creates an experiment or a registered model gets
MANAGE on it. An lmops role is a set of per-user grants (MLflow's own RBAC roles are not
used):

- ``approver``: EDIT on the experiment ``lmops-approvals``. An approval is a run there,
  and MLflow refuses a run in an experiment to anyone without EDIT on it.
- ``promoter`` (the promotion identity, a service account): EDIT on
  ``lmops-registry-audit``, where every gate decision is a run, and MANAGE on each
  registered model it promotes (setting an alias needs EDIT on the model).
- ``pipeline`` (the training pipeline's identity): EDIT on the training experiment
  (``lmops``). Registering a version needs EDIT on the model, the same permission that
  sets aliases, and creating the model gives MANAGE: whatever identity the pipeline runs
  as can move every alias of the models it registers. Run the pipeline as the promotion
  identity (grant it both roles) so that one service account, not two, can do that.

Everything here calls the auth REST API of MLflow 3.17 (``/api/3.0/mlflow/users/
permissions/grant`` and its siblings; the 2.x routes such as
``experiments/permissions/create`` answer 404) with the credentials in
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, which must be an admin's: the
server refuses these calls to anyone else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import mlflow
from mlflow import MlflowClient

from lmops.config import RegistryConfig
from lmops.errors import LmopsError
from model_registry.history import APPROVALS_EXPERIMENT, AUDIT_EXPERIMENT

TRAINING_EXPERIMENT = RegistryConfig().experiment
EXPERIMENTS = (AUDIT_EXPERIMENT, APPROVALS_EXPERIMENT, TRAINING_EXPERIMENT)
EXPERIMENT, MODEL = "experiment", "registered_model"  # MLflow's resource types
# role -> (experiment name, permission) grants; models are granted per name (grant()).
ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "approver": ((APPROVALS_EXPERIMENT, "EDIT"),),
    "promoter": ((AUDIT_EXPERIMENT, "EDIT"),),
    "pipeline": ((TRAINING_EXPERIMENT, "EDIT"),),
}
PROMOTER_MODEL_PERMISSION = "MANAGE"


def _call(method: str, path: str, **kwargs) -> dict:
    """One auth API call as the configured (admin) user; errors become one clear line."""
    import requests

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        raise LmopsError(
            f"roles live on an MLflow server with basic-auth; the tracking URI is {uri}"
        )
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    auth = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    try:
        r = requests.request(method, uri.rstrip("/") + path, auth=auth, timeout=60, **kwargs)
    except requests.RequestException as e:
        raise LmopsError(f"cannot reach {uri}: {e}") from None
    if r.status_code == 401:
        raise LmopsError(
            f"{uri} refused the credentials of '{user}'; set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an admin's"
        )
    if r.status_code == 403:
        raise LmopsError(
            f"'{user}' may not {method} {path} on {uri}: managing roles needs an admin"
        )
    if r.status_code == 404 and not r.content.startswith(b"{"):
        raise LmopsError(f"{uri} has no {path}: is it running with --app-name basic-auth?")
    body = r.json() if r.content.startswith(b"{") else {}
    if not r.ok:
        raise LmopsError(f"{method} {path}: {body.get('message') or r.text[:300]}")
    return body


def create_user(username: str, password: str) -> None:
    """Create a login; it holds the server's default permission until granted more."""
    _call("POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": password})


def delete_user(username: str) -> None:
    """Delete a login and, with it, every grant it held."""
    _call("DELETE", "/api/2.0/mlflow/users/delete", json={"username": username})


def users() -> list[str]:
    """Every login on the server."""
    return [u["username"] for u in _call("GET", "/api/2.0/mlflow/users/list")["users"]]


def _require_admin() -> None:
    me = _call("GET", "/api/2.0/mlflow/users/current")["user"]
    if not me.get("is_admin"):
        raise LmopsError(f"'{me['username']}' is not an admin: managing roles needs an admin")


def ensure_experiments(names: Iterable[str] = EXPERIMENTS) -> dict[str, str]:
    """Create the registry's experiments as the admin; returns name -> id.

    Run it before anyone else uses the server: the first to create an experiment gets
    MANAGE on it, and MANAGE on ``lmops-approvals`` means approving and granting the
    approver role to others. That is also why a missing experiment is created only by
    an admin. An experiment that already exists is left as it is; check who holds it
    with :func:`holders`.
    """
    client = MlflowClient()
    ids = {}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            _require_admin()
            try:
                ids[name] = client.create_experiment(name)
            except mlflow.exceptions.MlflowException:  # created concurrently
                ids[name] = client.get_experiment_by_name(name).experiment_id
        else:
            ids[name] = exp.experiment_id
    return ids


def _resource_id(resource_type: str, resource: str) -> str:
    """Experiments are granted by id, registered models by name."""
    if resource_type == EXPERIMENT:
        return ensure_experiments([resource])[resource]
    return resource


def set_permission(username: str, resource_type: str, resource: str, permission: str) -> None:
    """Give ``username`` exactly ``permission`` on one experiment or registered model.

    MLflow refuses a second grant on the same resource, so an existing one is revoked
    and granted again at the new level. An experiment that does not exist yet is first
    created by the caller (see :func:`ensure_experiments`).
    """
    payload = {
        "username": username,
        "resource_type": resource_type,
        "resource_id": _resource_id(resource_type, resource),
        "permission": permission,
    }
    try:
        _call("POST", "/api/3.0/mlflow/users/permissions/grant", json=payload)
    except LmopsError as e:
        if "already exists" not in str(e):
            raise
        revoke_permission(username, resource_type, resource)
        _call("POST", "/api/3.0/mlflow/users/permissions/grant", json=payload)


def revoke_permission(username: str, resource_type: str, resource: str) -> None:
    """Remove ``username``'s grant; the server's default permission applies again."""
    _call(
        "POST",
        "/api/3.0/mlflow/users/permissions/revoke",
        json={
            "username": username,
            "resource_type": resource_type,
            "resource_id": _resource_id(resource_type, resource),
        },
    )


def permission(username: str, resource_type: str, resource: str) -> str:
    """The permission the server applies to ``username`` on the resource, default included."""
    rid = _resource_id(resource_type, resource)
    return _call(
        "GET",
        "/api/3.0/mlflow/users/permissions/get",
        params={"username": username, "resource_type": resource_type, "resource_id": rid},
    )["permission"]


def holders(resource_type: str, resource: str) -> dict[str, str]:
    """Every user whose permission on the resource is above READ, with that permission.

    One request per user: meant for an admin's audit (who can approve, who can move
    an alias), not for a hot path. Admins are listed as ADMIN: MLflow checks nothing
    for them.
    """
    listed = _call("GET", "/api/2.0/mlflow/users/list")["users"]
    out = {}
    for u in listed:
        if u.get("is_admin"):
            out[u["username"]] = "ADMIN"
            continue
        p = permission(u["username"], resource_type, resource)
        if p in ("USE", "EDIT", "MANAGE"):
            out[u["username"]] = p
    return out


def grant(role: str, username: str, models: Iterable[str] = ()) -> None:
    """Give ``username`` the grants of ``role`` (see the module docstring).

    ``approver``: EDIT on ``lmops-approvals``, so MLflow accepts the user's approval
    runs; EDIT, not MANAGE, so an approver cannot make others approvers.
    ``promoter``: EDIT on ``lmops-registry-audit``, so its gate decisions are recorded,
    and MANAGE on each of ``models``, the level MLflow gives a model's creator: EDIT on
    a model is what setting an alias needs, MANAGE adds deleting it and granting access
    to it. ``pipeline``: EDIT on the training experiment, for its runs; it gets MANAGE on
    the models it creates from MLflow itself.
    """
    if role not in ROLES:
        raise LmopsError(f"unknown role '{role}'; roles are {', '.join(ROLES)}")
    if models and role != "promoter":
        raise LmopsError(f"only the promoter role takes models; {role} gets none")
    for experiment, perm in ROLES[role]:
        set_permission(username, EXPERIMENT, experiment, perm)
    for model in models:
        set_permission(username, MODEL, model, PROMOTER_MODEL_PERMISSION)


def revoke(role: str, username: str, models: Iterable[str] = ()) -> None:
    """Take ``role``'s grants away again; the server's default permission applies again."""
    if role not in ROLES:
        raise LmopsError(f"unknown role '{role}'; roles are {', '.join(ROLES)}")
    for experiment, _ in ROLES[role]:
        revoke_permission(username, EXPERIMENT, experiment)
    for model in models:
        revoke_permission(username, MODEL, model)
