"""Separation of duties against the real MLflow server (basic-auth, PostgreSQL).

Each actor is a user of the server with its own random password, and acts in its own
process with its own MLFLOW_TRACKING_USERNAME/PASSWORD, as on its own laptop. The grants
are the documented deployment (``model_registry.roles``): alice is an approver, bob has
EDIT on the model but no approver role, carol has nothing beyond the server's default
(READ), and the promoter is the promotion identity (MANAGE on the model, EDIT on the
audit experiment), which the pipeline also runs as (EDIT on the training experiment).
The admin of ``services.env`` sets the stage in this process.

Run with `make test-services` (CI: `.ci/run` starts the services first).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from conftest import GATE_PASSING_METRICS, LMOPS, REPO
from lmops.errors import LmopsError
from model_registry import history, history_read, roles
from model_registry import keys as signing_keys
from model_registry import tags as T
from model_registry.signed_evidence import Author, sign_version

pytestmark = pytest.mark.services
NEEDED = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
GOOD = GATE_PASSING_METRICS
# One actor process: runs steps against the server, prints one RESULT line (JSON).
# ["promote", version, alias] | ["approve", version] | ["rollback", alias]
# | ["barrier", ready_file, go_file]: say it is ready, wait for the go.
STEPS = r"""
import json, sys, time
from pathlib import Path
from model_registry import promotion
name, steps, good = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = []
for op, *args in steps:
    try:
        if op == "barrier":
            Path(args[0]).touch()
            while not Path(args[1]).exists():
                time.sleep(0.02)
            continue
        if op == "promote":
            o = promotion.promote(name, args[0], args[1], rescore=lambda inc, es: dict(good))
            out.append({"passed": o.decision.passed, "moved": o.moved,
                        "reasons": o.decision.reasons, "actor": o.event.actor})
        elif op == "approve":
            ev = promotion.approve(name, args[0])
            out.append({"actor": ev.actor, "verified": ev.verified})
        elif op == "rollback":
            ev = promotion.rollback(name, args[0])
            out.append({"from": ev.from_version, "to": ev.to_version, "actor": ev.actor})
    except Exception as e:
        out.append({"error": f"{type(e).__name__}: {e}"})
print("RESULT " + json.dumps(out))
"""


@dataclass(frozen=True)
class Actor:
    """A user of the server, acting through its own processes."""

    name: str
    password: str
    promoter: str  # LMOPS_PROMOTION_IDENTITY, as the deployment configures it for everyone
    home: Path

    def env(self, **extra: str | None) -> dict[str, str]:
        """This user's environment; a variable given as None is removed."""
        e = {
            **os.environ,
            "MLFLOW_TRACKING_USERNAME": self.name,
            "MLFLOW_TRACKING_PASSWORD": self.password,
            "LMOPS_PROMOTION_IDENTITY": self.promoter,
            "LMOPS_HOME": str(self.home),
            # One pipeline/promotion key and trust file for the deployment (approvers
            # sign nothing): this process's, so every actor verifies what it signed.
            "LMOPS_SIGNING_KEY": str(signing_keys.key_file_for(signing_keys.EVIDENCE)),
            "LMOPS_TRUST_FILE": str(signing_keys.trust_file()),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
        }
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def lmops(self, *args: str, **env: str | None) -> subprocess.Popen:
        """`lmops ARGS` as this user; started, not waited for (see ``finish``)."""
        return subprocess.Popen(
            [LMOPS, *args],
            cwd=REPO,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def steps(self, model: str, steps: list, **env: str | None) -> subprocess.Popen:
        """A Python process of this user running ``STEPS``; started, not waited for."""
        return subprocess.Popen(
            [sys.executable, "-c", STEPS, model, json.dumps(steps), json.dumps(GOOD)],
            cwd=REPO,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rest(self, method: str, path: str, **kwargs) -> requests.Response:
        """A raw MLflow REST call with this user's credentials: what MLflow itself allows."""
        uri = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
        return requests.request(
            method, uri + path, auth=(self.name, self.password), timeout=60, **kwargs
        )


def finish(proc: subprocess.Popen, timeout: float = 420) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def results(proc: subprocess.Popen) -> list[dict]:
    rc, out, err = finish(proc)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert rc == 0 and lines, f"actor process failed (exit {rc}):\n{out[-2000:]}\n{err[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def clean_error(proc: subprocess.Popen, needle: str) -> str:
    """A refused command: non-zero exit, one line naming the problem, no traceback."""
    rc, out, err = finish(proc)
    text = out + err
    assert rc != 0, f"expected a refusal, got exit 0:\n{text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]
    assert needle in text, text[-2000:]
    return text


@pytest.fixture(scope="module")
def actors(tmp_path_factory):
    """Four fresh users with the documented grants; deleted afterwards."""
    missing = [k for k in NEEDED if not os.environ.get(k)]
    assert not missing, (
        f"services tests need {missing}: run `lmops services up` and "
        "`set -a; source $LMOPS_HOME/services.env; set +a`"
    )
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    roles.ensure_experiments()
    tag = uuid.uuid4().hex[:8]
    names = {r: f"{r}-{tag}" for r in ("alice", "bob", "carol", "promoter")}
    home = tmp_path_factory.mktemp("actors-home")
    made = []
    try:
        for name in names.values():
            password = secrets.token_urlsafe(18)
            roles.create_user(name, password)
            made.append(Actor(name, password, names["promoter"], home))
        a = dict(zip(names, made, strict=True))
        roles.grant("approver", a["alice"].name)
        roles.grant("promoter", a["promoter"].name)
        roles.grant("pipeline", a["promoter"].name)  # the pipeline runs as the promoter
        yield a
    finally:
        for actor in made:
            with suppress(LmopsError):  # the test's result matters more than tidying
                roles.delete_user(actor.name)


@pytest.fixture(scope="module")
def source_run(actors):
    """A run for versions to point at: the server accepts no bare local path as a source."""
    exp = roles.ensure_experiments(["lmops-services-tests"])["lmops-services-tests"]
    return MlflowClient().create_run(exp)


class Model:
    """A fresh registered model, created by the admin, with the documented model grants."""

    def __init__(self, actors: dict[str, Actor], run) -> None:
        self.client = MlflowClient()
        self.name = f"sod-{uuid.uuid4().hex[:10]}"
        self.run = run
        self.pipeline = actors["promoter"].name  # the identity the pipeline runs as
        self.client.create_registered_model(self.name)
        roles.grant("promoter", actors["promoter"].name, models=[self.name])
        roles.set_permission(actors["bob"].name, roles.MODEL, self.name, "EDIT")

    def add_version(self, author: str | None = None, **metrics) -> str:
        """A registered version with files in the artifact store and signed evidence,
        as the pipeline (running as ``author``, by default the promoter) writes it."""
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="sod-version-"))
        (folder / "config.json").write_text('{"model_type": "llama"}')
        (folder / "model.safetensors").write_bytes(os.urandom(256))
        path = f"versions/{uuid.uuid4().hex[:8]}"
        self.client.log_artifacts(self.run.info.run_id, str(folder), path)
        mv = self.client.create_model_version(
            self.name, source=f"{self.run.info.artifact_uri}/{path}", run_id=self.run.info.run_id
        )
        sign_version(
            self.name,
            str(mv.version),
            {**GOOD, **metrics},
            "es-a",
            {T.DATA_VALIDATION: "passed"},
            Author(author or self.pipeline, True, "the pipeline's login"),
        )
        return str(mv.version)

    def holder(self, alias: str) -> str | None:
        return {
            a: str(v) for a, v in self.client.get_registered_model(self.name).aliases.items()
        }.get(alias)


@pytest.fixture
def model(actors, source_run):
    return Model(actors, source_run)


def test_the_deployment_grants_what_the_docs_say(actors, model, monkeypatch):
    a = {r: x.name for r, x in actors.items()}
    exp, mdl = roles.EXPERIMENT, roles.MODEL
    expected = {
        (exp, history.APPROVALS_EXPERIMENT): dict(
            alice="EDIT", bob="READ", carol="READ", promoter="READ"
        ),
        (exp, history.AUDIT_EXPERIMENT): dict(
            alice="READ", bob="READ", carol="READ", promoter="EDIT"
        ),
        (exp, roles.TRAINING_EXPERIMENT): dict(
            alice="READ", bob="READ", carol="READ", promoter="EDIT"
        ),
        (mdl, model.name): dict(alice="READ", bob="EDIT", carol="READ", promoter="MANAGE"),
    }
    got = {key: {r: roles.permission(a[r], *key) for r in want} for key, want in expected.items()}
    assert got == expected
    approvers = roles.holders(exp, history.APPROVALS_EXPERIMENT)
    assert approvers[a["alice"]] == "EDIT"
    assert not {a["bob"], a["carol"], a["promoter"]} & approvers.keys()

    with pytest.raises(LmopsError, match="unknown role 'admin'"):
        roles.grant("admin", a["carol"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", a["carol"])  # not an admin
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", actors["carol"].password)
    with pytest.raises(LmopsError, match="managing roles needs an admin"):
        roles.grant("approver", a["carol"])
    with pytest.raises(LmopsError, match="is not an admin"):  # she would own it: MANAGE
        roles.ensure_experiments([f"lmops-approvals-{uuid.uuid4().hex[:8]}"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-her-password")
    with pytest.raises(LmopsError, match="refused the credentials"):
        roles.permission(a["carol"], mdl, model.name)


def test_only_the_promotion_identity_moves_production(actors, model):
    bob, carol = actors["bob"], actors["carol"]
    v = model.add_version()
    clean_error(
        bob.lmops("promote", model.name, v, "--to", "production"),
        f"only the promotion identity '{actors['promoter'].name}' moves @production",
    )
    assert model.holder("production") is None

    # Below lmops, MLflow decides: READ on the model cannot set an alias ...
    body = {"name": model.name, "alias": "production", "version": v}
    denied = carol.rest("POST", "/api/2.0/mlflow/registered-models/alias", json=body)
    assert denied.status_code == 403, denied.text
    assert model.holder("production") is None
    # ... EDIT can: MLflow has no permission that edits a model but not its aliases.
    allowed = bob.rest("POST", "/api/2.0/mlflow/registered-models/alias", json=body)
    assert allowed.status_code == 200, allowed.text
    assert model.holder("production") == v
    assert history_read.events(model.name) == []  # and no lmops history records it
    # lmops notices: no signed promotion record moves the alias there.
    text = clean_error(carol.lmops("verify", f"{model.name}@production"), "does not verify")
    assert "no signed promotion record moves the alias" in text


def test_approvals_need_the_role_and_are_recorded_under_the_authenticated_name(actors, model):
    alice = actors["alice"]
    v = model.add_version()
    own = model.add_version(author=alice.name)
    procs = {
        "alice": alice.lmops("approve", model.name, v, "--comment", "read the card"),
        "author": alice.lmops("approve", model.name, own),
        **{r: actors[r].lmops("approve", model.name, v) for r in ("bob", "carol", "promoter")},
    }
    rc, out, err = finish(procs["alice"])
    assert rc == 0, out + err
    clean_error(procs["author"], f"{alice.name} registered {model.name} v{own} and cannot approve")
    for r in ("bob", "carol"):  # EDIT on the model, READ: neither is an approver
        clean_error(
            procs[r],
            f"{actors[r].name} lacks the approver role: EDIT on the MLflow experiment "
            f"'{history.APPROVALS_EXPERIMENT}'",
        )
    # The pipeline runs as the promoter, so it registered v: refused as its author
    # (and it holds no approver role either).
    promoter = actors["promoter"].name
    clean_error(procs["promoter"], f"{promoter} registered {model.name} v{v} and cannot approve")
    approvals = history_read.events(model.name, experiment=history.APPROVALS_EXPERIMENT)
    assert [(e.event, e.version, e.actor, e.verified, e.comment) for e in approvals] == [
        ("approve", v, alice.name, True, "read the card")
    ]


def test_a_wrong_password_or_no_login_is_a_clear_error(actors, model):
    alice = actors["alice"]
    v = model.add_version()
    wrong = alice.lmops("approve", model.name, v, MLFLOW_TRACKING_PASSWORD="not-alice-password")
    anonymous = alice.lmops(
        "approve", model.name, v, MLFLOW_TRACKING_USERNAME=None, MLFLOW_TRACKING_PASSWORD=None
    )
    clean_error(wrong, f"refused the credentials of '{alice.name}'")
    clean_error(anonymous, "MLFLOW_TRACKING_USERNAME")
    assert history_read.events(model.name, experiment=history.APPROVALS_EXPERIMENT) == []


def test_an_approval_filed_under_another_name_never_counts(actors, model):
    """MLflow accepts any tags on a run, so an approver can write a record that names
    someone else. The lmops-auth server records who really created the run, and the
    gate counts the approval as neither: it is "alice filed as carol"."""
    alice, carol, promoter = actors["alice"], actors["carol"], actors["promoter"]
    v = model.add_version()
    exp_id = roles.ensure_experiments([history.APPROVALS_EXPERIMENT])[history.APPROVALS_EXPERIMENT]
    claimed = history.Event(
        event="approve",
        model=model.name,
        version=v,
        alias="production",
        actor=carol.name,
        verified=True,
        evidence_digest=model.client.get_model_version(model.name, v).tags[T.EVIDENCE_DIGEST],
    )
    forged = {
        T.EVENT: "approve",
        T.EVENT_MODEL: model.name,
        T.EVENT_VERSION: v,
        T.EVENT_ALIAS: "production",
        T.EVENT_ACTOR: carol.name,
        T.EVENT_RECORD: history.record_json(claimed),
    }
    body = {"experiment_id": exp_id, "user_id": carol.name}  # the client's claim, too
    run = alice.rest("POST", "/api/2.0/mlflow/runs/create", json=body)
    assert run.status_code == 200, run.text
    tags = [{"key": k, "value": val} for k, val in forged.items()]
    run_id = run.json()["run"]["info"]["run_id"]
    logged = alice.rest(
        "POST", "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "tags": tags}
    )
    assert logged.status_code == 200, logged.text
    (ev,) = history_read.events(model.name, v, history.APPROVALS_EXPERIMENT)
    assert (ev.actor, ev.server_user) == (carol.name, alice.name)
    # Nor can she overwrite what the server recorded.
    fix = [{"key": T.SERVER_USER, "value": carol.name}]
    denied_tag = alice.rest(
        "POST", "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "tags": fix}
    )
    assert denied_tag.status_code == 403, denied_tag.text
    out = results(
        promoter.steps(model.name, [["promote", v, "staging"], ["promote", v, "production"]])
    )
    assert out[0]["passed"] and not out[1]["passed"], out
    row = next(r for r in out[1]["reasons"] if "approvals" in r)
    assert row.startswith("FAIL") and f"{alice.name} filed as {carol.name}" in row, row
    # carol herself, without the approver role, is refused by the server.
    denied = carol.rest("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": exp_id})
    assert denied.status_code == 403


def test_forged_tags_on_the_server_are_refused(actors, model):
    """bob holds EDIT on the model: he can edit its tags, and the gate refuses them."""
    bob, promoter = actors["bob"], actors["promoter"]
    v1, v2 = model.add_version(), model.add_version()
    for v, tag, value in ((v1, T.REGISTERED_BY, bob.name), (v2, T.DATA_VALIDATION, "failed")):
        body = {"name": model.name, "version": v, "key": tag, "value": value}
        r = bob.rest("POST", "/api/2.0/mlflow/model-versions/set-tag", json=body)
        assert r.status_code == 200, r.text
    out = results(
        promoter.steps(model.name, [["promote", v1, "staging"], ["promote", v2, "staging"]])
    )
    assert not out[0]["passed"] and not out[1]["passed"], out
    assert f"lmops.registered_by is {bob.name} on the version" in out[0]["reasons"][0]
    assert "lmops.data_validation is failed on the version, passed" in out[1]["reasons"][0]


def test_promote_approve_production_rollback_history(actors, model, tmp_path):
    alice, carol, promoter = actors["alice"], actors["carol"], actors["promoter"]
    m = model.name
    v1, v2 = model.add_version(), model.add_version(**{"eval/bits_per_byte": 1.9})

    go = tmp_path / "approved"
    promoting = promoter.steps(
        m,
        [
            ["promote", v1, "staging"],
            ["barrier", str(tmp_path / "staged"), str(go)],  # meanwhile alice approves
            ["promote", v1, "production"],
            ["promote", v2, "staging"],
            ["promote", v2, "production"],
            ["rollback", "production"],
        ],
    )
    approved = results(alice.steps(m, [["approve", v1], ["approve", v2]]))
    assert [(e["actor"], e["verified"]) for e in approved] == [(alice.name, True)] * 2
    go.touch()
    out = results(promoting)
    assert [o.get("moved", o.get("to")) for o in out] == [True, True, True, True, v1], out
    assert {o.get("actor") for o in out} == {promoter.name}
    assert (model.holder("production"), model.holder("staging")) == (v1, v2)

    mine = sorted(
        history_read.events(m) + history_read.events(m, experiment=history.APPROVALS_EXPERIMENT),
        key=lambda e: e.time,
    )
    rc, out, err = finish(carol.lmops("history", m, "--json"))
    assert rc == 0, out + err
    theirs = json.loads(out)
    assert [e["run_id"] for e in theirs] == [e.run_id for e in mine]
    audit = [
        (e["event"], e["actor"], e["verified"], e["alias"], e["to_version"])
        for e in theirs
        if e["event"] in ("gate", "rollback")
    ]
    p = promoter.name
    assert audit == [
        ("gate", p, True, "staging", v1),
        ("gate", p, True, "production", v1),
        ("gate", p, True, "staging", v2),
        ("gate", p, True, "production", v2),
        ("rollback", p, True, "production", v1),
    ]
    assert [
        (e["actor"], e["verified"], e["version"]) for e in theirs if e["event"] == "approve"
    ] == [
        (alice.name, True, v1),
        (alice.name, True, v2),
    ]


def test_racing_promotions_on_the_server(actors, model, tmp_path):
    promoter = actors["promoter"]
    versions = [model.add_version() for _ in range(2)]
    go = tmp_path / "go"
    procs = [
        promoter.steps(
            model.name,
            [["barrier", str(tmp_path / f"ready-{v}"), str(go)], ["promote", v, "staging"]],
        )
        for v in versions
    ]
    deadline = time.time() + 180
    while not all((tmp_path / f"ready-{v}").exists() for v in versions):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            go.touch()  # release the others before reporting
            pytest.fail(f"a racing process died or never got ready: {[finish(p) for p in procs]}")
        time.sleep(0.05)
    go.touch()  # both start their promotion at once
    outcomes = {v: results(p)[0] for v, p in zip(versions, procs, strict=True)}

    winners = [v for v, o in outcomes.items() if o.get("passed")]
    assert winners, outcomes
    for o in outcomes.values():
        assert o.get("passed") or "another promotion of" in o.get("error", ""), outcomes
    events = history_read.events(model.name)
    assert sorted(e.version for e in events) == sorted(winners)  # one event per winner
    assert all((e.actor, e.verified, e.passed) == (promoter.name, True, True) for e in events)
    assert model.holder("staging") == events[-1].to_version  # the last winner holds it
    # strictly one after the other: each winner saw the previous one's alias
    assert [e.from_version for e in events] == ["", *(e.to_version for e in events[:-1])]
    locks = MlflowClient().search_registered_models(f"name LIKE 'lmops-lock.{model.name}.%'")
    assert locks == []
