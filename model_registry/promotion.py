"""Promotion: the one place that moves aliases, always through a gate decision.

``promote`` verifies the candidate's signed evidence (signature, files, tags),
compares it with the incumbent re-scored on the same evaluation set, counts the
approvals of that evidence a production move needs, decides with the alias's policy,
and on a pass signs the move as the promotion identity, records it and moves the
alias; a refusal is recorded too. Two promotions racing for one alias are serialised
by a lock (:mod:`model_registry.alias_lock`); the loser fails with a clear message and
the history stays consistent. The incumbent is re-scored before the lock is taken,
never under it; under the lock the gate checks that it still holds the alias.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError
from model_registry import history, history_read
from model_registry import tags as T
from model_registry.alias_lock import alias_lock
from model_registry.gates import ApprovalRecord, Decision, Evidence, Policy, decide, load_policy
from model_registry.history_section import refresh_history_section
from model_registry.identity import Identity, current_identity, promotion_identity
from model_registry.promotion_records import sign_move
from model_registry.signed_evidence import (
    SignedEvidence,
    from_statement,
    signed_statement,
    verify_version,
)
from model_registry.versions import get_version, holder

# metrics of (incumbent version, eval set id), re-scored; None when it cannot be scored
Rescore = Callable[[str, str], dict[str, float] | None]
# Re-scorings per promotion at most: the alias may move while its holder is re-scored.
RESCORE_ATTEMPTS = 3


class GateRefused(LmopsError):
    """A gate decided against the move; the reasons are in the message."""

    exit_code = 4


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    event: history.Event
    moved: bool


@dataclass(frozen=True)
class Rescored:
    """The alias's holder when it was read, and its scores on the candidate's eval set."""

    incumbent: str | None  # None: the alias had no holder
    eval_set: str | None = None  # the set it was scored on; None: not scored
    metrics: dict[str, float] | None = None  # None: not scored, or could not be


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
    for ev in history_read.events(name, version, history.APPROVALS_EXPERIMENT):
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
        for e in history_read.events(name, version)
        if e.alias == "staging" and e.to_version == str(version)
    ]
    if not moved or holder(name, "staging") != str(version):
        return None
    return (time.time() - moved[-1].time) / 3600


def rescore_incumbent(name: str, version: str, alias: str, rescore: Rescore | None) -> Rescored:
    """The holder of ``alias`` re-scored on the candidate's eval set, if there is one.

    Run it outside the promotion lock: scoring loads and runs a model. The eval set is
    the one in the candidate's signed statement (its signature checked, its files not):
    the gate uses the scores only if that is the eval set of the evidence it verifies.
    """
    incumbent = holder(name, alias)
    if incumbent is None or incumbent == str(version) or rescore is None:
        return Rescored(incumbent)
    try:
        eval_set = from_statement(signed_statement(get_version(name, version))[0]).eval_set
    except LmopsError:  # unsigned or forged evidence: the gate refuses it, on record
        return Rescored(incumbent)
    return Rescored(incumbent, eval_set, rescore(incumbent, eval_set))


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
    scored = rescore_incumbent(name, version, alias, rescore)
    return _evidence(name, version, scored, authenticated)


def _evidence(
    name: str, version: str, scored: Rescored, authenticated: bool
) -> tuple[Evidence, SignedEvidence]:
    signed = verify_version(name, version)
    mv = get_version(name, version)
    incumbent = scored.incumbent if scored.incumbent != str(version) else None
    approvals = _approvals(name, version, signed.author.name, authenticated, signed.digest)
    return (
        Evidence(
            metrics=signed.metrics,
            eval_set=signed.eval_set,
            data_validation_passed=signed.data_validation_passed,
            incumbent_metrics=scored.metrics,
            incumbent_eval_set=scored.eval_set if scored.metrics is not None else None,
            incumbent_version=incumbent,
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
    """Decide with ``alias``'s policy; move the alias only if the decision passed.

    Re-scoring the incumbent loads and runs a model, so it happens first, outside the
    lock. Under the lock, if another move gave the alias to another holder meanwhile, the
    lock is released and the new holder is re-scored, at most ``RESCORE_ATTEMPTS`` times.
    """
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
    for _ in range(RESCORE_ATTEMPTS):
        scored = rescore_incumbent(name, version, alias, rescore) if rescore else None
        with alias_lock(name, alias, who.name):
            current = holder(name, alias)
            if scored is None:  # nothing to score: the holder read here is the incumbent
                scored = Rescored(current)
            if current == scored.incumbent:
                return _gate(name, version, alias, policy, who, scored)
    raise LmopsError(
        f"{name} @{alias} moved {RESCORE_ATTEMPTS} times while its holder was re-scored; "
        "retry when the other promotions have finished"
    )


def _gate(
    name: str, version: str, alias: str, policy: Policy, who: Identity, scored: Rescored
) -> Outcome:
    """Decide, sign, record and move; the caller holds the lock and ``scored`` is current."""
    before = scored.incumbent
    signed = None
    try:
        evidence, signed = _evidence(name, version, scored, who.verified)
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
            for e in history_read.events(name)
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
