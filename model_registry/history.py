"""The registry's history: every gate decision, alias move, approval and rollback.

Each event is a finished MLflow run in a dedicated experiment, so the history lives
with the tracking server (every user of the server sees the same one), survives any
laptop, and reads in the MLflow UI: the run name says what happened and the run's
description (``mlflow.note.content``) lists the reasons. Approvals live in their own
experiment: on a server, granting EDIT on it is what gives a user the approver role,
because MLflow refuses a run in an experiment to anyone without EDIT there.

An event is stored as a handful of tags to search on (kind, event, model, version,
alias, actor), the whole event as one JSON tag (``lmops.event_record``) and the
markdown description. One tag instead of one per field halves the rows MLflow loads
per run (a server's search over 1,005 events: 0.65 s before, 0.38 s after).
They are read back by ``history_read.events``.
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
    signature: str = ""  # DSSE envelope of the move (promotion_records.py); "" if not a move
    server_user: str = ""  # who created the run, as the lmops-auth server recorded it

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


# Kept out of the JSON record: the run holds them (time, id), they have their own tag
# (signature), or only the server may write them (server_user).
_NOT_IN_RECORD = ("time", "run_id", "signature", "server_user")
# MLflow refuses a tag value over 8,000 characters; the record must stay valid JSON.
RECORD_LIMIT = 8000
NOTE_LIMIT = 5000


def record_json(ev: Event) -> str:
    """The event as JSON, without its time and run id (the run holds those).

    Long reasons and comments are cut, each marked, so the JSON always fits a tag.
    """
    fields = {k: v for k, v in asdict(ev).items() if k not in _NOT_IN_RECORD}
    fields["reasons"] = list(ev.reasons)
    text = json.dumps(fields, ensure_ascii=False)
    for cap in (1000, 300, 100):
        if len(text) <= RECORD_LIMIT:
            break
        fields["reasons"] = [r if len(r) <= cap else r[:cap] + " [cut]" for r in ev.reasons]
        fields["comment"] = ev.comment if len(ev.comment) <= cap else ev.comment[:cap] + " [cut]"
        text = json.dumps(fields, ensure_ascii=False)
    while len(text) > RECORD_LIMIT and fields["reasons"]:
        fields["reasons"] = fields["reasons"][:-1]
        text = json.dumps(fields, ensure_ascii=False)
    return text


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
        T.EVENT_RECORD: record_json(ev),
        T.NOTE: ev.markdown()[:NOTE_LIMIT],
    }
    if ev.signature:
        tags[T.SIGNED_RECORD] = ev.signature
    run = client.create_run(exp_id, start_time=int(ev.time * 1000), run_name=ev.title()[:250])
    client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run.info.run_id, "FINISHED", end_time=int(ev.time * 1000))
    return Event(**{**asdict(ev), "run_id": run.info.run_id})


def from_tags(tags: dict[str, str], start_ms: int, run_id: str) -> Event:
    """The event a run's tags hold. A run without a valid record reads as blank fields."""
    try:
        fields = json.loads(tags.get(T.EVENT_RECORD) or "{}")
    except json.JSONDecodeError:
        fields = {}
    known = {f for f in Event.__dataclass_fields__ if f not in _NOT_IN_RECORD}
    fields = {k: v for k, v in fields.items() if k in known} if isinstance(fields, dict) else {}
    # The searchable tags win over the record: they are what a query selected on.
    for name, tag in (
        ("event", T.EVENT),
        ("model", T.EVENT_MODEL),
        ("version", T.EVENT_VERSION),
        ("alias", T.EVENT_ALIAS),
        ("actor", T.EVENT_ACTOR),
    ):
        fields[name] = tags.get(tag, "")
    fields.setdefault("verified", False)
    fields.setdefault("passed", False)
    fields["reasons"] = tuple(fields.get("reasons") or ())
    fields["signature"] = tags.get(T.SIGNED_RECORD, "")
    fields["server_user"] = tags.get(T.SERVER_USER, "")
    return Event(**fields, time=start_ms / 1000, run_id=run_id)
