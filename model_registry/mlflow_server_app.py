"""The lmops MLflow server app: basic-auth plus a record of who the server authenticated.

``mlflow server --app-name lmops-auth`` (registered in pyproject.toml under the
``mlflow.app`` entry-point group, which is how MLflow resolves ``--app-name``, exactly as
it does for its own ``basic-auth = mlflow.server.auth:create_app``).

Why it exists: MLflow OSS authenticates every request on a basic-auth server but records
no authenticated creator. CreateRun stores whatever ``user_id`` the client sends, and a
model version carries no creator at all, so a client could file an approval run "as
alice". This app keeps all of basic-auth and adds, server side:

- after a successful CreateRun, the run tag ``lmops.server.user`` = the authenticated
  username; after a successful CreateModelVersion, the version tag
  ``lmops.server.created_by`` = the authenticated username; both written straight through
  the server's stores, after the client's own tags;
- a 403 (PERMISSION_DENIED) for any client request that would set or delete either key
  (set-tag, delete-tag, log-batch, create with tags), admins included: nobody writes
  these by hand, so a reader can trust them.
"""

from __future__ import annotations

import json

from flask import Flask, Response, g, request
from mlflow.entities import RunTag
from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
from mlflow.protos.model_registry_pb2 import (
    CreateModelVersion,
    DeleteModelVersionTag,
    SetModelVersionTag,
)
from mlflow.protos.service_pb2 import CreateRun, DeleteTag, LogBatch, SetTag
from mlflow.server import app as mlflow_flask_app
from mlflow.server import auth
from mlflow.server.handlers import (
    _add_static_prefix,
    _get_model_registry_store,
    _get_request_message,
    _get_tracking_store,
    catch_mlflow_exception,
    get_endpoints,
)

from model_registry.tags import SERVER_CREATED_BY, SERVER_USER

# Request class -> (the server-only key it could touch, the tag keys a request names).
_GUARDED = {
    SetTag: (SERVER_USER, lambda m: [m.key]),
    DeleteTag: (SERVER_USER, lambda m: [m.key]),
    LogBatch: (SERVER_USER, lambda m: [t.key for t in m.tags]),
    CreateRun: (SERVER_USER, lambda m: [t.key for t in m.tags]),
    SetModelVersionTag: (SERVER_CREATED_BY, lambda m: [m.key]),
    DeleteModelVersionTag: (SERVER_CREATED_BY, lambda m: [m.key]),
    CreateModelVersion: (SERVER_CREATED_BY, lambda m: [t.key for t in m.tags]),
}
# The UI's prompt-lab route also creates a run from client-sent tags, outside the proto
# table (mlflow/server/__init__.py registers it by hand, /ajax-api only).
_PROMPTLAB = "/ajax-api/2.0/mlflow/runs/create-promptlab-run"
_routes: dict[tuple[str, str], object] = {}


def _build_routes() -> dict[tuple[str, str], object]:
    """(Flask rule, method) -> request class, from the endpoint table MLflow's router and
    basic-auth are built from, so /api, /ajax-api, every API version and the
    --static-prefix variants are all covered without listing paths by hand."""
    table = get_endpoints(lambda cls: cls if cls in _GUARDED else None)
    routes = {(p, m): h for p, h, methods in table if h in _GUARDED for m in methods}
    routes[(_add_static_prefix(_PROMPTLAB), "POST")] = _PROMPTLAB
    return routes


def _request_class():
    # Keyed on the rule Flask matched (what dispatches to the handler), not the raw path:
    # a path spelled differently (// or a trailing slash) matches no rule and runs nothing.
    rule = request.url_rule
    return _routes.get((rule.rule, request.method)) if rule is not None else None


def _touches(key: str, protected: str) -> bool:
    # Look-alikes too: a MySQL backend compares keys case-insensitively and ignores
    # trailing spaces, so "LMOPS.SERVER.USER " could land on the same row there.
    return isinstance(key, str) and key.strip().lower() == protected


@catch_mlflow_exception
def _refuse_server_tags():
    cls = _request_class()
    if cls is None:
        return None
    if cls is _PROMPTLAB:
        protected, body = SERVER_USER, request.get_json(silent=True)
        tags = body.get("tags") if isinstance(body, dict) else None
        keys = [t.get("key") for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    else:
        protected, keys_of = _GUARDED[cls]
        try:
            # The handler's own parser, so we see the keys exactly as the handler will.
            keys = keys_of(_get_request_message(cls()))
        except MlflowException:
            return None  # the handler refuses the same body with the same parser
    if any(_touches(k, protected) for k in keys):
        raise MlflowException(
            f"The tag '{protected}' is written only by the lmops-auth server: it records "
            "the identity the server authenticated, so no client (admins included) may "
            "set, overwrite or delete it.",
            error_code=PERMISSION_DENIED,
        )
    return None


def _authenticated_user() -> str | None:
    # What basic-auth itself uses: the name its _before_request stamped, else the result
    # of the configured authorization function.
    user = getattr(g, "mlflow_authenticated_user", None)
    if not user:
        authorization = auth.authenticate_request()
        user = getattr(authorization, "username", None)
    return user if isinstance(user, str) and user else None


@catch_mlflow_exception
def _stamp_creator(resp: Response) -> Response:
    cls = _request_class()
    if cls not in (CreateRun, _PROMPTLAB, CreateModelVersion) or not 200 <= resp.status_code < 300:
        return resp
    user = _authenticated_user()
    if user is None:  # never stamp a guessed name; a missing tag reads as "unknown"
        return resp
    body = resp.get_json(silent=True) or {}
    if cls is CreateModelVersion:
        mv = body["model_version"]
        tag = ModelVersionTag(SERVER_CREATED_BY, user)
        _get_model_registry_store().set_model_version_tag(mv["name"], mv["version"], tag)
        mv.setdefault("tags", []).append({"key": tag.key, "value": tag.value})
    else:
        run = body["run"]
        _get_tracking_store().set_tag(run["info"]["run_id"], RunTag(SERVER_USER, user))
        run.setdefault("data", {}).setdefault("tags", []).append(
            {"key": SERVER_USER, "value": user}
        )
    # The client gets the entity as stored, server tag included.
    resp.set_data(json.dumps(body))
    return resp


def create_app(app: Flask = mlflow_flask_app):
    """basic-auth's ``create_app`` (all of its behaviour), plus the two hooks above."""
    global _routes
    served = auth.create_app(app)  # a FastAPI app wrapping ``app`` under uvicorn
    _routes = _build_routes()
    # Registered after basic-auth's: Flask runs before_request hooks in order, so a
    # request is authenticated (401) and authorized (403) before its tags are checked.
    app.before_request(_refuse_server_tags)
    app.after_request(_stamp_creator)
    return served
