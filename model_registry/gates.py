"""Promotion gates: typed policies as data plus a pure ``decide(evidence, policy)``.

One policy file per alias, ``policies/<alias>.toml``, loaded into :class:`Policy`,
which forbids unknown keys: a misspelt threshold is an error, never ignored. The
alias picks the policy; a run cannot bring its own. A policy is a list of rows
(metric, operator, limit), so a new kind of evidence is a new row, not new code.
With no rows, nothing passes (TFX's rule). Every :class:`Decision` records the
policy's name, version and digest, so the audit trail says which rules decided.
"""

from __future__ import annotations

import hashlib
import json
import operator
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmops.errors import ConfigError

POLICY_DIR = Path(__file__).with_name("policies")
ALIASES = ("staging", "production")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Strict):
    """``metric op limit``, or ``metric op factor x vs_metric`` of the same evidence."""

    metric: str = Field(pattern=r"^(eval|safety|bias)/\w+$")
    op: Literal["<=", "<", ">=", ">"]
    limit: float | None = None
    vs_metric: str | None = Field(None, pattern=r"^(eval|safety|bias)/\w+$")
    factor: float = 1.0
    why: str = Field(min_length=1, description="One line a reviewer reads in the reasons.")

    @model_validator(mode="after")
    def _one_limit(self) -> Rule:
        if (self.limit is None) == (self.vs_metric is None):
            raise ValueError(f"rule for {self.metric}: give exactly one of limit or vs_metric")
        return self


class Baseline(_Strict):
    """No regression beyond ``max_regression`` (relative) against the re-scored incumbent."""

    metric: str = Field("eval/bits_per_byte", pattern=r"^(eval|safety|bias)/\w+$")
    lower_is_better: bool = True
    max_regression: float = Field(ge=0)


class Approval(_Strict):
    """Human approval before the alias moves."""

    min_approvals: int = Field(ge=1)
    role: str = "approver"
    min_hours_in_staging: float = Field(0, ge=0)


class Policy(_Strict):
    name: str
    version: int = Field(ge=1)
    alias: Literal["staging", "production"]
    extends: Literal["staging"] | None = None
    requires_alias: Literal["staging"] | None = Field(
        None, description="The candidate must hold this alias already."
    )
    require_data_validation: bool = True
    rules: list[Rule] = []
    baseline: Baseline | None = None
    approval: Approval | None = None

    def digest(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ApprovalRecord:
    identity: str
    has_role: bool
    is_author: bool  # the identity that registered the version: may not approve it


@dataclass(frozen=True)
class Evidence:
    """What a candidate brings to the gate, read back from the registry."""

    metrics: dict[str, float]
    eval_set: str
    data_validation_passed: bool | None = None
    incumbent_metrics: dict[str, float] | None = None  # re-scored on ``eval_set``
    incumbent_eval_set: str | None = None
    incumbent_version: str | None = None
    approvals: tuple[ApprovalRecord, ...] = ()
    hours_in_staging: float | None = None  # None: never held @staging
    holds: tuple[str, ...] = ()  # aliases the candidate holds now


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    policy: str = ""
    policy_version: int = 0
    policy_digest: str = ""

    def summary(self) -> str:
        return ("PASSED" if self.passed else "REJECTED") + ": " + "; ".join(self.reasons)


def _read(alias: str) -> dict:
    if alias not in ALIASES:
        raise ConfigError(f"unknown alias '{alias}'; lmops gates {list(ALIASES)}")
    path = POLICY_DIR / f"{alias}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no gate policy for @{alias}: {path} is missing") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"gate policy {path} is not valid TOML: {e}") from None


def load_policy(alias: str) -> Policy:
    """The repository's policy for ``alias``, with the rows of the policy it extends."""
    tree = _read(alias)
    try:
        policy = Policy.model_validate(tree)
    except ValidationError as e:
        errors = e.errors()
        # A misspelt key also leaves a required one missing: name the misspelling.
        first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(p) for p in first["loc"])
        what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(
            f"gate policy {POLICY_DIR / (alias + '.toml')}: '{where}': {what}"
        ) from None
    if policy.alias != alias:
        raise ConfigError(f"policy {policy.name} names alias '{policy.alias}' but guards @{alias}")
    if policy.extends:
        base = load_policy(policy.extends)
        policy = policy.model_copy(
            update={
                "rules": [*base.rules, *policy.rules],
                "baseline": policy.baseline or base.baseline,
                "require_data_validation": base.require_data_validation
                or policy.require_data_validation,
            }
        )
    return policy


def decide(evidence: Evidence, policy: Policy) -> Decision:
    """Apply every row of ``policy``; all must hold. No rows means no approval."""
    ok, reasons = True, []

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("ok " if passed else "FAIL ") + text)

    if not policy.rules:
        check(False, "no thresholds configured: nothing is approved")
    m = evidence.metrics
    if policy.requires_alias:
        check(
            policy.requires_alias in evidence.holds,
            f"holds @{policy.requires_alias}"
            + ("" if policy.requires_alias in evidence.holds else " (promote it there first)"),
        )
    if policy.require_data_validation:
        check(
            evidence.data_validation_passed is True,
            "data validation "
            + {True: "passed", False: "FAILED", None: "not recorded"}[
                evidence.data_validation_passed
            ],
        )
    for rule in policy.rules:
        got = m.get(rule.metric)
        if rule.vs_metric is None:
            limit, of = rule.limit, ""
        else:
            ref = m.get(rule.vs_metric)
            limit = None if ref is None else rule.factor * ref
            of = f" ({rule.factor:g} x {rule.vs_metric})"
        if got is None or limit is None:
            missing = rule.metric if got is None else rule.vs_metric
            check(False, f"{missing} missing: no evidence for '{rule.why}'")
            continue
        check(
            _OPS[rule.op](got, limit),
            f"{rule.metric} {got:.4g} {rule.op} {limit:.4g}{of}: {rule.why}",
        )
    _baseline(evidence, policy.baseline, reasons, check)
    _approvals(evidence, policy.approval, check)
    return Decision(ok, reasons, policy.name, policy.version, policy.digest())


def _baseline(evidence: Evidence, rule: Baseline | None, reasons: list[str], check) -> None:
    if rule is None:
        return
    base = evidence.incumbent_metrics
    if base is None and evidence.incumbent_version is None:
        # TFX: with no baseline, the change thresholds are skipped, not failed.
        reasons.append("skip baseline: no current holder")
        return
    if base is None:
        check(
            False,
            f"incumbent v{evidence.incumbent_version} could not be re-scored on the "
            "candidate's eval set (its dataset is not in this LMOPS_HOME?)",
        )
        return
    if evidence.incumbent_eval_set != evidence.eval_set:
        check(False, f"incumbent v{evidence.incumbent_version} was scored on another eval set")
        return
    got, ref = evidence.metrics.get(rule.metric), base.get(rule.metric)
    if got is None or ref is None:
        check(False, f"{rule.metric} missing for the candidate or the incumbent")
        return
    if rule.lower_is_better:
        limit, op = ref * (1 + rule.max_regression), "<="
        passed = got <= limit
    else:
        limit, op = ref * (1 - rule.max_regression), ">="
        passed = got >= limit
    check(
        passed,
        f"{rule.metric} {got:.4f} {op} incumbent v{evidence.incumbent_version} re-scored on "
        f"the same eval set ({ref:.4f}) within {rule.max_regression:.0%} = {limit:.4f}",
    )


def _approvals(evidence: Evidence, rule: Approval | None, check) -> None:
    if rule is None:
        return
    valid = sorted({a.identity for a in evidence.approvals if a.has_role and not a.is_author})
    refused = sorted({a.identity for a in evidence.approvals if not a.has_role or a.is_author})
    note = f" (not counted: {', '.join(refused)})" if refused else ""
    check(
        len(valid) >= rule.min_approvals,
        f"approvals by role '{rule.role}': {len(valid)} ({', '.join(valid) or 'none'}) "
        f">= {rule.min_approvals}{note}",
    )
    if rule.min_hours_in_staging:
        hours = evidence.hours_in_staging
        check(
            hours is not None and hours >= rule.min_hours_in_staging,
            f"time in @staging {0 if hours is None else hours:.1f} h "
            f">= {rule.min_hours_in_staging:g} h",
        )
