"""The registry's history: every gate decision, alias move, approval and rollback.

Each event is a finished MLflow run in a dedicated experiment, so the history lives
with the tracking server (every user of the server sees the same one), survives any
laptop, and reads in the MLflow UI: the run name says what happened and the run's
description (``mlflow.note.content``) lists the reasons. Approvals live in their own
experiment: on a server, granting EDIT on it is what gives a user the approver role,
because MLflow refuses a run in an experiment to anyone without EDIT there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from mlflow import MlflowClient
from mlflow.entities import RunTag

from lmops.tracking import ensure_experiment
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


def _experiment(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return ensure_experiment(name, tags={T.RUN_KIND: "registry-history"})


def record(ev: Event, experiment: str = AUDIT_EXPERIMENT) -> Event:
    """Write one event as a finished run; returns it with its run id."""
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


def _from_run(run) -> Event:
    t = run.data.tags
    return Event(
        event=t.get(T.EVENT, ""),
        model=t.get(T.EVENT_MODEL, ""),
        version=t.get(T.EVENT_VERSION, ""),
        alias=t.get(T.EVENT_ALIAS, ""),
        actor=t.get(T.EVENT_ACTOR, ""),
        verified=t.get(T.EVENT_VERIFIED) == "true",
        time=run.info.start_time / 1000,
        from_version=t.get(T.EVENT_FROM, ""),
        to_version=t.get(T.EVENT_TO, ""),
        passed=t.get(T.EVENT_PASSED) == "true",
        reasons=tuple(json.loads(t.get("lmops.reasons") or "[]")),
        policy=t.get(T.EVENT_POLICY, ""),
        policy_digest=t.get(T.EVENT_POLICY_DIGEST, ""),
        evidence_digest=t.get(T.EVENT_EVIDENCE_DIGEST, ""),
        comment=t.get("lmops.comment", ""),
        run_id=run.info.run_id,
    )


def events(
    model: str, version: str | None = None, experiment: str = AUDIT_EXPERIMENT
) -> list[Event]:
    """Events of ``model`` (one version, if given), oldest first."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    flt = f"tags.`{T.EVENT_MODEL}` = '{model}'"
    if version is not None:
        flt += f" and tags.`{T.EVENT_VERSION}` = '{version}'"
    out, token = [], None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            flt,
            order_by=["attributes.start_time ASC"],
            max_results=5000,
            page_token=token,
        )
        out += [_from_run(r) for r in page]
        token = page.token
        if not token:
            return out
