"""The lmops-auth server app (model_registry/mlflow_server_app.py) against the real server.

MLflow's basic-auth stores the ``user_id`` a client sends with CreateRun and no creator on
a model version. lmops-auth writes the authenticated username as the run tag
``lmops.server.user`` and the version tag ``lmops.server.created_by``, and refuses both
keys from every client, admins included. Everything here is raw REST with ``requests``:
what the server allows, not what the lmops client chooses to send.

Run with `make test-services` (CI: `.ci/run` starts the services first).
"""

from __future__ import annotations

import os
import secrets
import uuid
from contextlib import suppress
from dataclasses import dataclass

import mlflow
import pytest
import requests

from lmops.errors import LmopsError
from model_registry import roles
from model_registry import tags as T

pytestmark = pytest.mark.services
NEEDED = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
PREFIXES = ("/api", "/ajax-api")


@dataclass(frozen=True)
class User:
    name: str
    password: str

    def rest(self, method: str, path: str, **kwargs) -> requests.Response:
        uri = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
        return requests.request(
            method, uri + path, auth=(self.name, self.password), timeout=60, **kwargs
        )

    def ok(self, method: str, path: str, **kwargs) -> dict:
        r = self.rest(method, path, **kwargs)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json()


def refused(r: requests.Response, key: str) -> None:
    """A 403 in MLflow's error format that names the protected key."""
    assert r.status_code == 403, f"{r.status_code} {r.text[:500]}"
    body = r.json()
    assert body["error_code"] == "PERMISSION_DENIED", body
    assert key in body["message"], body


@pytest.fixture(scope="module")
def admin() -> User:
    missing = [k for k in NEEDED if not os.environ.get(k)]
    if missing:
        pytest.skip(f"needs {missing}: `lmops services up`, then source services.env")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return User(os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])


@pytest.fixture(scope="module")
def user(admin):
    """A fresh non-admin with EDIT on a fresh experiment and MANAGE on a fresh registered
    model: basic-auth lets only MANAGE delete a version's tag, and what is refused here
    must be refused by lmops-auth, not by basic-auth's own check."""
    tag = uuid.uuid4().hex[:8]
    u = User(f"ident-{tag}", secrets.token_urlsafe(18))
    roles.create_user(u.name, u.password)
    try:
        exp = f"lmops-identity-{tag}"
        roles.set_permission(u.name, roles.EXPERIMENT, exp, "EDIT")  # created by the admin
        model = f"identity-{tag}"
        admin.ok("POST", "/api/2.0/mlflow/registered-models/create", json={"name": model})
        roles.set_permission(u.name, roles.MODEL, model, "MANAGE")
        yield u, roles.ensure_experiments([exp])[exp], model
    finally:
        with suppress(LmopsError):
            roles.delete_user(u.name)


def run_tags(who: User, run_id: str) -> dict[str, str]:
    run = who.ok("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def version_tags(who: User, name: str, version: str) -> dict[str, str]:
    mv = who.ok(
        "GET", "/api/2.0/mlflow/model-versions/get", params={"name": name, "version": version}
    )["model_version"]
    return {t["key"]: t["value"] for t in mv.get("tags", [])}


def new_run(u: User, exp: str, prefix: str = "/api") -> str:
    body = {"experiment_id": exp, "user_id": "alice", "tags": [{"key": "k", "value": "v"}]}
    return u.ok("POST", f"{prefix}/2.0/mlflow/runs/create", json=body)["run"]["info"]["run_id"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_run_records_the_authenticated_user_not_the_user_id_it_sent(user, prefix):
    u, exp, _ = user
    body = {"experiment_id": exp, "user_id": "alice"}
    created = u.ok("POST", f"{prefix}/2.0/mlflow/runs/create", json=body)["run"]
    run_id = created["info"]["run_id"]
    # The response already carries the server's tag, and so does the stored run.
    assert {t["key"]: t["value"] for t in created["data"]["tags"]}[T.SERVER_USER] == u.name
    stored = run_tags(u, run_id)
    assert stored[T.SERVER_USER] == u.name
    # Why the tag exists: MLflow itself keeps the client's claim.
    run = u.ok("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
    assert run["info"]["user_id"] == "alice"


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("as_admin", [False, True], ids=["user", "admin"])
@pytest.mark.parametrize("op", ["set-tag", "log-batch", "delete-tag"])
def test_nobody_sets_overwrites_or_deletes_the_run_user_tag(admin, user, prefix, as_admin, op):
    u, exp, _ = user
    run_id = new_run(u, exp)
    who = admin if as_admin else u
    body = {
        "set-tag": {"run_id": run_id, "key": T.SERVER_USER, "value": "alice"},
        "log-batch": {"run_id": run_id, "tags": [{"key": T.SERVER_USER, "value": "alice"}]},
        "delete-tag": {"run_id": run_id, "key": T.SERVER_USER},
    }[op]
    refused(who.rest("POST", f"{prefix}/2.0/mlflow/runs/{op}", json=body), T.SERVER_USER)
    assert run_tags(u, run_id)[T.SERVER_USER] == u.name


def test_a_look_alike_key_is_refused_too(user):
    u, exp, _ = user
    run_id = new_run(u, exp)
    body = {"run_id": run_id, "tags": [{"key": "LMOPS.Server.User ", "value": "alice"}]}
    refused(u.rest("POST", "/api/2.0/mlflow/runs/log-batch", json=body), T.SERVER_USER)
    assert run_tags(u, run_id)[T.SERVER_USER] == u.name


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("as_admin", [False, True], ids=["user", "admin"])
def test_a_run_cannot_be_created_with_the_user_tag(admin, user, prefix, as_admin):
    u, exp, _ = user
    who = admin if as_admin else u
    forged = f"forged-{uuid.uuid4().hex[:8]}"
    body = {
        "experiment_id": exp,
        "run_name": forged,
        "tags": [{"key": T.SERVER_USER, "value": "alice"}],
    }
    refused(who.rest("POST", f"{prefix}/2.0/mlflow/runs/create", json=body), T.SERVER_USER)
    found = u.ok(
        "POST",
        "/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp], "filter": f"attributes.run_name = '{forged}'"},
    )
    assert found.get("runs", []) == []  # refused before the run existed


def new_version(u: User, exp: str, model: str, prefix: str = "/api") -> str:
    run_id = new_run(u, exp)
    run = u.ok("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
    body = {"name": model, "source": run["info"]["artifact_uri"] + "/model", "run_id": run_id}
    mv = u.ok("POST", f"{prefix}/2.0/mlflow/model-versions/create", json=body)["model_version"]
    assert {t["key"]: t["value"] for t in mv.get("tags", [])}[T.SERVER_CREATED_BY] == u.name
    return str(mv["version"])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_version_records_who_created_it_and_nobody_rewrites_that(admin, user, prefix):
    u, exp, model = user
    v = new_version(u, exp, model, prefix)
    assert version_tags(u, model, v)[T.SERVER_CREATED_BY] == u.name
    base = f"{prefix}/2.0/mlflow/model-versions"
    for who in (u, admin):
        setting = {"name": model, "version": v, "key": T.SERVER_CREATED_BY, "value": "alice"}
        refused(who.rest("POST", f"{base}/set-tag", json=setting), T.SERVER_CREATED_BY)
        deleting = {"name": model, "version": v, "key": T.SERVER_CREATED_BY}
        refused(who.rest("DELETE", f"{base}/delete-tag", json=deleting), T.SERVER_CREATED_BY)
        assert version_tags(u, model, v)[T.SERVER_CREATED_BY] == u.name


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_version_cannot_be_created_with_the_creator_tag(admin, user, prefix):
    u, exp, model = user
    run_id = new_run(u, exp)
    run = u.ok("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
    body = {
        "name": model,
        "source": run["info"]["artifact_uri"] + "/model",
        "run_id": run_id,
        "tags": [{"key": T.SERVER_CREATED_BY, "value": "alice"}],
    }
    for who in (u, admin):
        r = who.rest("POST", f"{prefix}/2.0/mlflow/model-versions/create", json=body)
        refused(r, T.SERVER_CREATED_BY)
    search = u.ok(
        "GET", "/api/2.0/mlflow/model-versions/search", params={"filter": f"run_id = '{run_id}'"}
    )
    assert search.get("model_versions", []) == []


def test_ordinary_tags_still_work(user):
    u, exp, model = user
    run_id = new_run(u, exp)
    u.ok("POST", "/api/2.0/mlflow/runs/set-tag", json={"run_id": run_id, "key": "a", "value": "1"})
    batch = {"run_id": run_id, "tags": [{"key": "b", "value": "2"}]}
    u.ok("POST", "/ajax-api/2.0/mlflow/runs/log-batch", json=batch)
    u.ok("POST", "/api/2.0/mlflow/runs/delete-tag", json={"run_id": run_id, "key": "k"})
    got = run_tags(u, run_id)
    assert (got.get("a"), got.get("b"), "k" in got) == ("1", "2", False)
    assert got[T.SERVER_USER] == u.name

    v = new_version(u, exp, model)
    base = "/api/2.0/mlflow/model-versions"
    u.ok("POST", f"{base}/set-tag", json={"name": model, "version": v, "key": "c", "value": "3"})
    u.ok("POST", f"{base}/set-tag", json={"name": model, "version": v, "key": "d", "value": "4"})
    u.ok("DELETE", f"{base}/delete-tag", json={"name": model, "version": v, "key": "d"})
    got = version_tags(u, model, v)
    assert (got.get("c"), "d" in got, got[T.SERVER_CREATED_BY]) == ("3", False, u.name)
