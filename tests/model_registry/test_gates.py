"""Gate decisions, table-driven: the repository's policies on realistic good and bad evidence."""

import pytest

from conftest import GATE_PASSING_METRICS
from lmops.errors import ConfigError
from model_registry import gates
from model_registry.gates import ApprovalRecord, Evidence, Policy, decide, load_policy

STAGING = load_policy("staging")
PRODUCTION = load_policy("production")

GOOD = GATE_PASSING_METRICS
ALICE = ApprovalRecord("alice", has_role=True, is_author=False)


def _ev(
    incumbent_bpb=None, same_set=True, validation=True, approvals=(), holds=("staging",), **changes
):
    return Evidence(
        metrics={**GOOD, **changes},
        eval_set="es-a",
        data_validation_passed=validation,
        incumbent_metrics=None if incumbent_bpb is None else {"eval/bits_per_byte": incumbent_bpb},
        incumbent_eval_set="es-a" if same_set else "es-b",
        incumbent_version=None if incumbent_bpb is None else "3",
        approvals=tuple(approvals),
        holds=tuple(holds),
    )


def test_no_rows_means_no_approval():
    empty = Policy(name="empty", version=1, alias="staging", require_data_validation=False)
    d = decide(_ev(), empty)
    assert not d.passed and "no thresholds configured" in d.reasons[0]


def test_good_candidate_passes_and_the_decision_names_its_policy():
    d = decide(_ev(), STAGING)
    assert d.passed, d.reasons
    assert any("skip baseline: no current holder" in r for r in d.reasons)
    assert (d.policy, d.policy_version, d.policy_digest) == ("staging", 1, STAGING.digest())


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        # An untrained or collapsed model: no better than token frequencies.
        ({"eval/bits_per_byte": 2.9}, "FAIL eval/bits_per_byte"),
        ({"eval/min_new_tokens": 0}, "FAIL eval/min_new_tokens"),
        ({"eval/tokens_scored": 40}, "FAIL eval/tokens_scored"),
        # Trained on abusive text: its red-team completions are toxic.
        ({"safety/toxicity_rate": 0.4}, "FAIL safety/toxicity_rate"),
        ({"safety/flagged_rate": 0.6}, "FAIL safety/flagged_rate"),
        ({"safety/pii_leak_rate": 0.3}, "FAIL safety/pii_leak_rate"),
        ({"safety/canary_leak_rate": 0.5}, "FAIL safety/canary_leak_rate"),
        ({"safety/memorisation_rate": 0.9}, "FAIL safety/memorisation_rate"),
    ],
)
def test_each_row_rejects_a_bad_model(change, failing):
    d = decide(_ev(**change), STAGING)
    assert not d.passed and any(r.startswith(failing) for r in d.reasons), d.reasons


def test_failed_data_validation_and_missing_evidence_fail():
    assert not decide(_ev(validation=False), STAGING).passed
    assert not decide(_ev(validation=None), STAGING).passed
    ev = _ev()
    metrics = {k: v for k, v in ev.metrics.items() if not k.startswith("safety/")}
    d = decide(Evidence(metrics, ev.eval_set, True), STAGING)
    assert not d.passed and any("missing" in r for r in d.reasons)


def test_must_not_regress_against_the_rescored_incumbent():
    assert not decide(_ev(incumbent_bpb=1.8), STAGING).passed  # 2.0 > 1.8 x 1.05
    assert decide(_ev(incumbent_bpb=1.95), STAGING).passed


def test_incumbent_that_could_not_be_rescored_is_refused_not_skipped():
    ev = _ev()
    d = decide(Evidence(ev.metrics, "es-a", True, incumbent_version="3", holds=ev.holds), STAGING)
    assert not d.passed and any("could not be re-scored" in r for r in d.reasons)


def test_incumbent_scored_on_another_set_is_refused_not_skipped():
    d = decide(_ev(incumbent_bpb=2.5, same_set=False), STAGING)
    assert not d.passed and any("another eval set" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("approvals", "passes"),
    [
        ((), False),
        ((ALICE,), True),
        ((ApprovalRecord("bob", has_role=False, is_author=False),), False),  # no role
        ((ApprovalRecord("carol", has_role=True, is_author=True),), False),  # own model
        ((ALICE, ALICE), True),
    ],
)
def test_production_needs_an_approver_who_is_not_the_author(approvals, passes):
    d = decide(_ev(approvals=approvals), PRODUCTION)
    assert d.passed is passes, d.reasons


def test_production_needs_the_version_at_staging_first():
    d = decide(_ev(approvals=[ALICE], holds=()), PRODUCTION)
    assert not d.passed and d.reasons[0] == "FAIL holds @staging (promote it there first)"


def test_production_includes_every_staging_row_and_is_stricter():
    assert {r.metric for r in STAGING.rules} <= {r.metric for r in PRODUCTION.rules}
    assert not decide(_ev(approvals=[ALICE], **{"safety/flagged_rate": 0.2}), PRODUCTION).passed


def test_misspelt_policy_key_is_an_error(tmp_path, monkeypatch):
    text = (gates.POLICY_DIR / "staging.toml").read_text()
    (tmp_path / "staging.toml").write_text(text.replace("max_regression", "max_regresion"))
    monkeypatch.setattr(gates, "POLICY_DIR", tmp_path)
    with pytest.raises(ConfigError, match="max_regresion"):
        load_policy("staging")


def test_unknown_alias_is_an_error():
    with pytest.raises(ConfigError, match="unknown alias 'prod'"):
        load_policy("prod")
