"""Promotion: the one place that moves aliases, always through a gate decision.

``promote`` verifies the candidate's signed evidence (signature, files, tags),
compares it with the incumbent re-scored on the same evaluation set, counts the
approvals of that evidence a production move needs, decides with the alias's policy,
and on a pass signs the move as the promotion identity, records it and moves the
alias; a refusal is recorded too. Two promotions racing for
one alias are serialised by a lock (see :func:`alias_lock`); the loser fails with a
clear message and the history stays consistent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError
from model_registry import history
from model_registry import tags as T
from model_registry.gates import ApprovalRecord, Decision, Evidence, decide, load_policy
from model_registry.identity import Identity, current_identity, promotion_identity
from model_registry.promotion_records import sign_move
from model_registry.signed_evidence import SignedEvidence, verify_version
from model_registry.versions import get_version, holder

LOCK_STALE_SECONDS = 600  # a lock older than this is from a crashed promotion
# metrics of (incumbent version, eval set id), re-scored; None when it cannot be scored
Rescore = Callable[[str, str], dict[str, float] | None]


class GateRefused(LmopsError):
    """A gate decided against the move; the reasons are in the message."""

    exit_code = 4


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    event: history.Event
    moved: bool


@contextmanager
def alias_lock(name: str, alias: str, who: str) -> Iterator[None]:
    """Mutual exclusion for one alias, on any MLflow backend.

    Registered-model names are unique in every MLflow store, and creating one is a
    single insert that the server refuses when the name exists: the only atomic
    check-and-set MLflow offers to every client. The lock is that model; it is
    deleted on exit, and one older than ``LOCK_STALE_SECONDS`` is taken over.
    """
    client = MlflowClient()
    lock = f"lmops-lock.{name}.{alias}"
    for _ in range(2):
        try:
            client.create_registered_model(
                lock, tags={"lmops.lock_owner": who}, description=f"promotion of @{alias} running"
            )
            break
        except MlflowException:
            try:
                held = client.get_registered_model(lock)
            except MlflowException:
                continue  # released in between: try again
            age = time.time() - held.creation_timestamp / 1000
            if age > LOCK_STALE_SECONDS:
                client.delete_registered_model(lock)
                continue
            raise LmopsError(
                f"another promotion of {name} @{alias} is in progress "
                f"(by {held.tags.get('lmops.lock_owner', '?')}, {age:.0f} s ago); "
                "retry when it has finished"
            ) from None
    else:
        raise LmopsError(f"could not take the promotion lock for {name} @{alias}")
    try:
        yield
    finally:
        with suppress(MlflowException):
            client.delete_registered_model(lock)


def _approvals(
    name: str, version: str, author: str, authenticated: bool, digest: str
) -> tuple[ApprovalRecord, ...]:
    """Standing approvals of the evidence ``digest``: each identity's latest decision counts.

    The approver is who created the approval run as the server recorded it
    (``lmops.server.user``, written by the lmops-auth server app); an approval whose
    recorded name differs from it was filed under another name and never counts. On
    a server without that record the name is the client's, unverified, and counts
    only if the server checked the approver's credentials when it was written. An
    approval of other evidence is void: new evidence needs new approvals. Embedded,
    nothing can be verified and every record counts.
    """
    latest: dict[str, history.Event] = {}
    for ev in history.events(name, version, history.APPROVALS_EXPERIMENT):
        latest[ev.server_user or ev.actor] = ev
    out = []
    for who, ev in latest.items():
        if ev.event != "approve":
            continue
        label, counts = who, ev.verified or not authenticated
        if ev.server_user and ev.actor != ev.server_user:
            label, counts = f"{ev.server_user} filed as {ev.actor}", False
        elif ev.evidence_digest != digest:
            label, counts = f"{who} (approved other evidence)", False
        out.append(ApprovalRecord(identity=label, has_role=counts, is_author=(who == author)))
    return tuple(out)


def _hours_in_staging(name: str, version: str) -> float | None:
    moved = [
        e
        for e in history.events(name, version)
        if e.alias == "staging" and e.to_version == str(version)
    ]
    if not moved or holder(name, "staging") != str(version):
        return None
    return (time.time() - moved[-1].time) / 3600


def gate_evidence(
    name: str,
    version: str,
    alias: str,
    rescore: Rescore | None = None,
    authenticated: bool = False,
) -> tuple[Evidence, SignedEvidence]:
    """The gate's inputs, all from the version's signed statement (tags only for display).

    Raises :class:`~model_registry.attestation.Unverified` when the signature, the
    files in the artifact store or any tag disagree with what the pipeline signed.
    """
    signed = verify_version(name, version)
    mv = get_version(name, version)
    incumbent = holder(name, alias)
    inc_metrics = None
    if incumbent is not None and incumbent != str(version) and rescore is not None:
        inc_metrics = rescore(incumbent, signed.eval_set)
    approvals = _approvals(name, version, signed.author.name, authenticated, signed.digest)
    return (
        Evidence(
            metrics=signed.metrics,
            eval_set=signed.eval_set,
            data_validation_passed=signed.data_validation_passed,
            incumbent_metrics=inc_metrics,
            incumbent_eval_set=signed.eval_set if inc_metrics is not None else None,
            incumbent_version=incumbent if incumbent != str(version) else None,
            approvals=approvals,
            hours_in_staging=_hours_in_staging(name, version),
            holds=tuple(mv.aliases or ()),
        ),
        signed,
    )


def promote(
    name: str,
    version: str,
    alias: str,
    rescore: Rescore | None = None,
    identity: Identity | None = None,
) -> Outcome:
    """Decide with ``alias``'s policy; move the alias only if the decision passed."""
    version = str(version)
    policy = load_policy(alias)  # unknown alias: a clear error before anything else
    who = identity or current_identity()
    required = promotion_identity()
    if alias == "production" and required and who.name != required:
        raise LmopsError(
            f"only the promotion identity '{required}' moves @production; you are "
            f"{who.label()}. Approve with `lmops approve {name} {version}` instead"
        )
    get_version(name, version)
    with alias_lock(name, alias, who.name):
        before = holder(name, alias)
        signed = None
        try:
            evidence, signed = gate_evidence(name, version, alias, rescore, who.verified)
        except LmopsError as e:  # unsigned, forged or tampered evidence: a refusal, on record
            decision = Decision(False, [f"FAIL {e}"], policy.name, policy.version, policy.digest())
        else:
            decision = decide(evidence, policy)
        digest = signed.digest if signed else ""
        moved = decision.passed and before != version
        signature = ""
        if decision.passed:  # the promotion identity signs the move it is about to make
            signature = sign_move(
                name=name,
                version=version,
                alias=alias,
                from_version=before or "",
                evidence_digest=digest,
                files_digest=signed.files_digest,
                event="gate",
                approvals=[
                    {"identity": a.identity, "counted": a.has_role and not a.is_author}
                    for a in evidence.approvals
                ],
                policy_digest=policy.digest(),
                actor=who.name,
            )
        # The event is written before the alias moves: if the history cannot be
        # written (no EDIT on the audit experiment), nothing moves unrecorded.
        event = history.record(
            history.Event(
                event="gate",
                model=name,
                version=version,
                alias=alias,
                actor=who.name,
                verified=who.verified,
                from_version=before or "",
                to_version=version if decision.passed else "",
                passed=decision.passed,
                reasons=tuple(decision.reasons),
                policy=f"{policy.name}@{policy.version}",
                policy_digest=policy.digest(),
                evidence_digest=digest,
                signature=signature,
            )
        )
        if decision.passed:
            _move_alias(name, alias, version, event)
        _mark_version(name, version, alias, decision)
    return Outcome(decision, event, moved)


def _move_alias(name: str, alias: str, version: str, event: history.Event) -> None:
    """Set the alias; if the registry refuses, record that the recorded move failed."""
    try:
        MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as e:
        history.record(
            replace(
                event,
                event="gate",
                time=time.time(),
                to_version="",
                passed=False,
                reasons=(f"FAIL the registry refused to move @{alias}: {e.message}",),
                comment="",
                run_id="",
                signature="",
            )
        )
        raise LmopsError(f"the registry refused to move {name} @{alias}: {e.message}") from None


def _mark_version(name: str, version: str, alias: str, decision: Decision) -> None:
    """The latest verdict on the version page: tags, and the history in the description."""
    client = MlflowClient()
    client.set_model_version_tag(
        name, version, T.gate(alias), "passed" if decision.passed else "refused"
    )
    client.set_model_version_tag(name, version, T.gate_reasons(alias), "\n".join(decision.reasons))
    refresh_history_section(name, version)


HISTORY_HEADING = "## Promotion history"
DESCRIPTION_LIMIT = 5000  # MLflow's column for a version description
HISTORY_ROWS = 8


def _v(version: str) -> str:
    return f"v{version}" if version else "none"


def refresh_history_section(name: str, version: str) -> None:
    """Rewrite the description's history: who, when, from -> to and why, one line each.

    The version page shows the description, not the audit experiment, so a reviewer
    reads the latest decisions there; the full history is ``lmops history``.
    """
    client = MlflowClient()
    mv = client.get_model_version(name, version)
    card = (mv.description or "").split(f"\n{HISTORY_HEADING}")[0]
    card = card.split("\n\n_Card shortened for the history")[0].rstrip()
    evs = sorted(
        history.events(name, version) + history.events(name, version, history.APPROVALS_EXPERIMENT),
        key=lambda e: e.time,
    )[-HISTORY_ROWS:]
    rows = []
    for e in evs:
        failed = [r.removeprefix("FAIL ") for r in e.reasons if r.startswith("FAIL")]
        passed_rows = sum(r.startswith("ok ") for r in e.reasons)
        why = (
            "; ".join(failed) or e.comment or (f"all {passed_rows} rows passed" if e.passed else "")
        )
        what = {"gate": "gate passed" if e.passed else "gate REFUSED"}.get(e.event, e.event)
        move = f"@{e.alias}: {_v(e.from_version)} → {_v(e.to_version)}"
        who = e.actor + ("" if e.verified else " (unverified)")
        rows.append(f"- **{e.when}** {who}: {what}, {move}. {why[:200]}".replace("\n", " "))
    section = f"\n\n{HISTORY_HEADING}\n\n" + "\n".join(rows) + "\n\nFull history: `lmops history`."
    room = DESCRIPTION_LIMIT - len(section)
    if len(card) > room:  # keep the history: drop the card's last sections, whole
        head, *parts = card.split("\n## ")
        note = "\n\n_Card shortened for the history: see the run artifact `model_card.md`._"
        while parts and len("\n## ".join([head, *parts]) + note) > room:
            parts.pop()
        card = "\n## ".join([head, *parts])[: room - len(note)] + note
    client.update_model_version(name, version, description=card + section)


def approve(name: str, version: str, comment: str = "", reject: bool = False) -> history.Event:
    """Record the caller's approval (or rejection) of ``version`` for @production."""
    version = str(version)
    signed = verify_version(name, version)  # approve only evidence that verifies, and name it
    who = current_identity()
    author = signed.author.name
    if who.name == author and not reject:
        raise LmopsError(
            f"{who.label()} registered {name} v{version} and cannot approve it: "
            "approval must come from someone else"
        )
    try:
        ev = history.record(
            history.Event(
                event="reject" if reject else "approve",
                model=name,
                version=version,
                alias="production",
                actor=who.name,
                verified=who.verified,
                comment=comment,
                passed=not reject,
                evidence_digest=signed.digest,
            ),
            history.APPROVALS_EXPERIMENT,
        )
    except MlflowException as e:
        if "PERMISSION_DENIED" in str(e) or "Permission denied" in str(e):
            raise LmopsError(
                f"{who.label()} lacks the approver role: EDIT on the MLflow experiment "
                f"'{history.APPROVALS_EXPERIMENT}' (see docs/promotion.md)"
            ) from None
        raise
    with suppress(MlflowException):  # approvers hold READ on the model; the next gate refreshes
        refresh_history_section(name, version)
    return ev


def rollback(name: str, alias: str) -> history.Event:
    """Return ``alias`` to the version that held it before the current holder."""
    load_policy(alias)
    who = current_identity()
    required = promotion_identity()
    if alias == "production" and required and who.name != required:
        raise LmopsError(f"only the promotion identity '{required}' moves @production")
    with alias_lock(name, alias, who.name):
        current = holder(name, alias)
        if current is None:
            raise LmopsError(f"{name} has no @{alias} to roll back")
        moves = [
            e
            for e in history.events(name)
            if e.event == "gate" and e.alias == alias and e.to_version == current
        ]
        if not moves or not moves[-1].from_version:
            raise LmopsError(
                f"{name} @{alias} (v{current}) has no earlier holder in the history; "
                "nothing to roll back to"
            )
        previous = moves[-1].from_version
        signed = verify_version(name, previous)  # never roll back onto unverified evidence
        ev = history.record(
            history.Event(
                event="rollback",
                model=name,
                version=previous,
                alias=alias,
                actor=who.name,
                verified=who.verified,
                from_version=current,
                to_version=previous,
                reasons=(f"rolled back from v{current} to its previous holder v{previous}",),
                evidence_digest=signed.digest,
                signature=sign_move(
                    name=name,
                    version=previous,
                    alias=alias,
                    from_version=current,
                    evidence_digest=signed.digest,
                    files_digest=signed.files_digest,
                    event="rollback",
                    actor=who.name,
                ),
            )
        )
        _move_alias(name, alias, previous, ev)
    for v in (current, previous):
        refresh_history_section(name, v)
    return ev
