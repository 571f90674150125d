"""Prefect flow: a reviewer approves a version for @production in a typed Prefect form.

    prefect deployment run lmops-promote-production/promote-production \\
        --params '{"name": "lmops-tiny", "version": "3"}'

(``version`` is a string; ``-p version=3`` would pass the number 3 and be refused.)

The flow checks the candidate against the production policy without its ``[approval]``
section (approval count, time in @staging), the incumbent re-scored as ``lmops promote``
does, and fails at once if a row fails: there is no point in asking a human. Otherwise it
publishes the evidence and the rows as an artifact (also shown on the form), pauses with
:class:`ApprovalForm`, which the Prefect UI renders as a form on the paused run, records
the answer in the approvals experiment as unverified, and on approval runs the full
production gate through ``model_registry.promotion.promote``. A rejection, a refusal or a
timeout fails the run, and the failure hooks notify.

A typed name is not an authenticated identity: the gate counts this approval only when
the promoting identity is not authenticated either (embedded MLflow). Against an MLflow
server with authentication it is ignored, and approvers record theirs with
``lmops approve`` (authenticated) before answering the form.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from lmops.home import prepare_environment
from lmops.tracking import configure_mlflow
from model_registry import history
from model_registry.gates import Decision, decide, load_policy
from model_registry.identity import current_identity
from model_registry.promotion import GateRefused, gate_evidence, holder, promote
from pipelines.evaluate import rescorer_for_version
from pipelines.events import emit_alias_moved
from pipelines.notify import notify_failure

ALIAS = "production"
PAUSE_POLL_SECONDS = 10  # how often the paused run asks the API whether it was resumed


class ApprovalForm(RunInput):
    """The reviewer's answer, entered on the paused run."""

    decision: Literal["approve", "reject"]
    approver: str = Field(min_length=1, description="Your name: the approver on record.")
    comment: str = Field("", description="What you checked, or why you reject.")


@task(name="check-candidate", cache_policy=NO_CACHE)
def check_candidate(name: str, version: str) -> tuple[Decision, str, str]:
    """Decide every production row but the [approval] section; ``GateRefused`` if one
    fails. Publishes the reviewer's summary; returns the decision, the evidence digest
    and that summary."""
    policy = load_policy(ALIAS)
    evidence, signed = gate_evidence(name, version, ALIAS, rescorer_for_version(name, version))
    digest = signed.digest  # the reviewer approves this evidence, and only this
    decision = decide(evidence, policy.model_copy(update={"approval": None}))
    if not decision.passed:
        failed = [r for r in decision.reasons if r.startswith("FAIL")]
        raise GateRefused(
            f"{name} v{version} cannot go to @{ALIAS}, approval or not: " + "; ".join(failed)
        )
    rows = "\n".join(f"- {r}" for r in decision.reasons)
    metrics = "\n".join(f"| `{k}` | {v:.4g} |" for k, v in sorted(evidence.metrics.items()))
    incumbent = holder(name, ALIAS)
    summary = (
        f"# Review {name} v{version} for @{ALIAS}\n\n"
        f"Current @{ALIAS}: {'v' + incumbent if incumbent else 'none'}. Policy "
        f"`{decision.policy}` v{decision.policy_version} (digest `{decision.policy_digest}`); "
        f"evidence digest `{digest}`, eval set `{evidence.eval_set}`.\n\n"
        f"Every row except the approval section passed:\n\n{rows}\n\n"
        f"| metric | value |\n|---|---|\n{metrics}\n\n"
        "Answer on the paused run (Resume). The name you type is recorded unverified: "
        "it counts only when MLflow runs without authentication; otherwise record your "
        f"approval with `lmops approve {name} {version}` first.\n"
    )
    create_markdown_artifact(
        key="production-review", markdown=summary, description="Evidence for the reviewer"
    )
    return decision, digest, summary


@task(name="record-review", cache_policy=NO_CACHE)
def record_review(
    name: str, version: str, answer: ApprovalForm, evidence_digest: str
) -> history.Event:
    """The form's answer as an approval or rejection event, unverified.

    Against a server with authentication a typed name proves nothing: the answer goes
    to the audit history, where it does not count as an approval (approvers record
    theirs with ``lmops approve``). Embedded, it is recorded as an approval.
    """
    comment = "via Prefect form" + (f": {answer.comment}" if answer.comment else "")
    authenticated = current_identity().verified
    return history.record(
        history.Event(
            event=answer.decision,
            model=name,
            version=version,
            alias=ALIAS,
            actor=answer.approver,
            verified=False,
            comment=comment,
            passed=answer.decision == "approve",
            evidence_digest=evidence_digest,
        ),
        history.AUDIT_EXPERIMENT if authenticated else history.APPROVALS_EXPERIMENT,
    )


@task(name="gate-and-promote-production", cache_policy=NO_CACHE)
def promote_production(name: str, version: str) -> dict:
    """The full production gate; raises ``GateRefused`` unless it passed."""
    out = promote(name, version, ALIAS, rescore=rescorer_for_version(name, version))
    d, ev = out.decision, out.event
    if not d.passed:
        failed = [r for r in d.reasons if r.startswith("FAIL")]
        raise GateRefused(f"@{ALIAS} gate refused {name} v{version}: " + "; ".join(failed))
    if out.moved:
        emit_alias_moved(name, ALIAS, ev.from_version, version, ev.actor, f"{ev.policy} passed")
    return {
        "model": name,
        "version": version,
        "alias": ALIAS,
        "moved": out.moved,
        "from_version": ev.from_version,
        "policy": ev.policy,
        "policy_digest": ev.policy_digest,
        "evidence_digest": ev.evidence_digest,
        "reasons": list(d.reasons),
        "promoter": ev.actor,
    }


@flow(
    name="lmops-promote-production",
    flow_run_name="{name}-v{version}",
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
)
def production_flow(name: str, version: str, timeout_hours: float = 72) -> dict:
    """Check the candidate, wait for a reviewer's answer, then gate and move @production."""
    configure_mlflow(prepare_environment(), "lmops")
    version = str(version)
    _, digest, summary = check_candidate(name, version)
    answer = pause_flow_run(
        wait_for_input=ApprovalForm.with_initial_data(description=summary),
        timeout=int(timeout_hours * 3600),
        poll_interval=PAUSE_POLL_SECONDS,
    )
    record_review(name, version, answer, digest)
    if answer.decision == "reject":
        raise GateRefused(
            f"{answer.approver} rejected {name} v{version} for @{ALIAS}: "
            + (answer.comment or "no comment")
        )
    return {**promote_production(name, version), "approver": answer.approver}
