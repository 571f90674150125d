"""The registry's history: every gate decision, alias move, approval and rollback.

Each event is a finished MLflow run in a dedicated experiment, so the history lives
with the tracking server (every user of the server sees the same one), survives any
laptop, and reads in the MLflow UI: the run name says what happened and the run's
description (``mlflow.note.content``) lists the reasons. Approvals live in their own
experiment: on a server, granting EDIT on it is what gives a user the approver role,
because MLflow refuses a run in an experiment to anyone without EDIT there.

Reading the history from a tracking server goes through MLflow's REST API with
``requests`` rather than the ``mlflow`` client: importing ``mlflow`` alone takes over a
second, which is most of what ``lmops history`` costs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from model_registry import tags as T

AUDIT_EXPERIMENT = "lmops-registry-audit"
APPROVALS_EXPERIMENT = "lmops-approvals"


@dataclass(frozen=True)
class Event:
    event: str  # gate | rollback | approve | reject
    model: str
    version: str
    alias: str
    actor: str
    verified: bool
    time: float = field(default_factory=time.time)
    from_version: str = ""  # holder of the alias before
    to_version: str = ""  # holder after; "" when the alias did not move
    passed: bool = True
    reasons: tuple[str, ...] = ()
    policy: str = ""
    policy_digest: str = ""
    evidence_digest: str = ""
    comment: str = ""
    run_id: str = ""

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.time))

    def title(self) -> str:
        move = (
            f"@{self.alias} v{self.from_version or '-'} -> v{self.to_version}"
            if self.to_version
            else f"@{self.alias} unchanged"
        )
        verdict = {"gate": "passed" if self.passed else "REFUSED"}.get(self.event, self.event)
        return f"{self.model} v{self.version}: {self.event} {verdict}, {move}"

    def markdown(self) -> str:
        who = self.actor + ("" if self.verified else " (unverified)")
        lines = [
            f"**{self.title()}**",
            "",
            f"- who: {who}",
            f"- when: {self.when}",
            f"- from -> to: v{self.from_version or '-'} -> v{self.to_version or '-'}",
        ]
        if self.policy:
            lines.append(f"- policy: {self.policy} (digest `{self.policy_digest}`)")
        if self.evidence_digest:
            lines.append(f"- evidence digest: `{self.evidence_digest}`")
        if self.comment:
            lines.append(f"- comment: {self.comment}")
        if self.reasons:
            lines += ["", "Reasons:", "", *(f"- {r}" for r in self.reasons)]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {**asdict(self), "when": self.when, "reasons": list(self.reasons)}


def _experiment(client, name: str) -> str:
    from lmops.tracking import ensure_experiment

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return ensure_experiment(name, tags={T.RUN_KIND: "registry-history"})


def record(ev: Event, experiment: str = AUDIT_EXPERIMENT) -> Event:
    """Write one event as a finished run; returns it with its run id."""
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    client = MlflowClient()
    exp_id = _experiment(client, experiment)
    tags = {
        T.RUN_KIND: "registry-event",
        T.EVENT: ev.event,
        T.EVENT_MODEL: ev.model,
        T.EVENT_VERSION: ev.version,
        T.EVENT_ALIAS: ev.alias,
        T.EVENT_ACTOR: ev.actor,
        T.EVENT_VERIFIED: str(ev.verified).lower(),
        T.EVENT_FROM: ev.from_version,
        T.EVENT_TO: ev.to_version,
        T.EVENT_PASSED: str(ev.passed).lower(),
        T.EVENT_POLICY: ev.policy,
        T.EVENT_POLICY_DIGEST: ev.policy_digest,
        T.EVENT_EVIDENCE_DIGEST: ev.evidence_digest,
        "lmops.reasons": json.dumps(list(ev.reasons))[:5000],
        "lmops.comment": ev.comment[:5000],
        T.NOTE: ev.markdown()[:5000],
    }
    run = client.create_run(exp_id, start_time=int(ev.time * 1000), run_name=ev.title()[:250])
    client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run.info.run_id, "FINISHED", end_time=int(ev.time * 1000))
    return Event(**{**asdict(ev), "run_id": run.info.run_id})


def _from_tags(t: dict[str, str], start_ms: int, run_id: str) -> Event:
    return Event(
        event=t.get(T.EVENT, ""),
        model=t.get(T.EVENT_MODEL, ""),
        version=t.get(T.EVENT_VERSION, ""),
        alias=t.get(T.EVENT_ALIAS, ""),
        actor=t.get(T.EVENT_ACTOR, ""),
        verified=t.get(T.EVENT_VERIFIED) == "true",
        time=start_ms / 1000,
        from_version=t.get(T.EVENT_FROM, ""),
        to_version=t.get(T.EVENT_TO, ""),
        passed=t.get(T.EVENT_PASSED) == "true",
        reasons=tuple(json.loads(t.get("lmops.reasons") or "[]")),
        policy=t.get(T.EVENT_POLICY, ""),
        policy_digest=t.get(T.EVENT_POLICY_DIGEST, ""),
        evidence_digest=t.get(T.EVENT_EVIDENCE_DIGEST, ""),
        comment=t.get("lmops.comment", ""),
        run_id=run_id,
    )


def _filter(model: str, version: str | None) -> str:
    flt = f"tags.`{T.EVENT_MODEL}` = '{model}'"
    if version is not None:
        flt += f" and tags.`{T.EVENT_VERSION}` = '{version}'"
    return flt


def events(
    model: str, version: str | None = None, experiment: str = AUDIT_EXPERIMENT
) -> list[Event]:
    """Events of ``model`` (one version, if given), oldest first."""
    uri = _tracking_uri()
    if uri.startswith(("http://", "https://")):
        return _events_rest(uri, model, version, experiment)
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out, token = [], None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            _filter(model, version),
            order_by=["attributes.start_time ASC"],
            max_results=5000,
            page_token=token,
        )
        out += [_from_tags(r.data.tags, r.info.start_time, r.info.run_id) for r in page]
        token = page.token
        if not token:
            return out


def _tracking_uri() -> str:
    import os
    import sys

    if "mlflow" in sys.modules:  # set_tracking_uri() in this process wins, as in MLflow
        import mlflow

        return mlflow.get_tracking_uri()
    return os.environ.get("MLFLOW_TRACKING_URI", "")


def _events_rest(uri: str, model: str, version: str | None, experiment: str) -> list[Event]:
    """The same query through the tracking server's REST API (see the module docstring)."""
    import os

    import requests

    from lmops.errors import LmopsError

    s = requests.Session()
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if user:
        s.auth = (user, password or "")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        s.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    api = uri.rstrip("/") + "/api/2.0/mlflow"

    def call(method: str, path: str, **kw) -> requests.Response:
        try:
            r = s.request(method, api + path, timeout=60, **kw)
        except requests.RequestException as e:
            raise LmopsError(f"cannot reach the tracking server at {uri}: {e}") from None
        if r.status_code in (401, 403):
            raise LmopsError(
                f"the tracking server at {uri} refused the history query ({r.status_code}): "
                "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            )
        return r

    r = call("GET", "/experiments/get-by-name", params={"experiment_name": experiment})
    if r.status_code == 404:
        return []
    if not r.ok:
        raise LmopsError(f"tracking server at {uri}: {r.status_code} {r.text[:200]}")
    exp_id = r.json()["experiment"]["experiment_id"]
    out, token = [], None
    while True:
        body = {
            "experiment_ids": [exp_id],
            "filter": _filter(model, version),
            "order_by": ["attributes.start_time ASC"],
            "max_results": 5000,
            **({"page_token": token} if token else {}),
        }
        r = call("POST", "/runs/search", json=body)
        if not r.ok:
            raise LmopsError(f"tracking server at {uri}: {r.status_code} {r.text[:200]}")
        page = r.json()
        for run in page.get("runs", []):
            tags = {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}
            info = run["info"]
            out.append(_from_tags(tags, int(info["start_time"]), info["run_id"]))
        token = page.get("next_page_token")
        if not token:
            return out
