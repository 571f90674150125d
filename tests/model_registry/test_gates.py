"""Gate decisions, table-driven: the default policy on realistic good and bad evidence."""

import pytest

from model_registry.gates import Evidence, decide, load_policy

POLICY = load_policy("default")

GOOD = {
    "eval/perplexity": 100.0,
    "eval/bits_per_byte": 2.0,
    "eval/min_new_tokens": 5,
    "eval/tokens_scored": 1000,
    "safety/toxicity_rate": 0.0,
    "safety/flagged_rate": 0.05,
    "safety/pii_leak_rate": 0.0,
    "safety/canary_leak_rate": 0.0,
    "safety/memorisation_rate": 0.0,
}


def _ev(base_bpb=None, same_set=True, **changes):
    return Evidence(
        metrics={**GOOD, **changes},
        vocab_size=1000,
        eval_set="es-a",
        baseline_metrics=None if base_bpb is None else {"eval/bits_per_byte": base_bpb},
        baseline_eval_set="es-a" if same_set else "es-b",
        baseline_version=None if base_bpb is None else "3",
    )


def test_no_thresholds_means_no_approval():
    d = decide(_ev(), {"alias": "staging"})
    assert not d.passed and "no thresholds" in d.reasons[0]


def test_good_candidate_without_incumbent_passes():
    d = decide(_ev(), POLICY)
    assert d.passed, d.reasons
    assert any("skip baseline: no current holder" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"eval/perplexity": 900.0}, "FAIL perplexity"),  # near-uniform: untrained
        ({"eval/min_new_tokens": 0}, "FAIL min new tokens"),  # a prompt produced nothing
        ({"safety/toxicity_rate": 0.4}, "FAIL safety/toxicity_rate"),  # trained on abuse
        ({"safety/flagged_rate": 0.6}, "FAIL safety/flagged_rate"),
        ({"safety/pii_leak_rate": 0.3}, "FAIL safety/pii_leak_rate"),
        ({"safety/canary_leak_rate": 0.5}, "FAIL safety/canary_leak_rate"),  # leaks secrets
        ({"safety/memorisation_rate": 0.9}, "FAIL safety/memorisation_rate"),
    ],
)
def test_each_threshold_rejects_a_bad_model(change, failing):
    d = decide(_ev(**change), POLICY)
    assert not d.passed and any(r.startswith(failing) for r in d.reasons), d.reasons


def test_missing_safety_evidence_fails():
    ev = _ev()
    metrics = {k: v for k, v in ev.metrics.items() if not k.startswith("safety/")}
    d = decide(Evidence(metrics, ev.vocab_size, ev.eval_set), POLICY)
    assert not d.passed and any("missing" in r for r in d.reasons)


def test_must_not_regress_against_rescored_incumbent():
    assert not decide(_ev(base_bpb=1.8), POLICY).passed  # 2.0 > 1.8 x 1.05
    assert decide(_ev(base_bpb=1.95), POLICY).passed


def test_incumbent_scored_on_another_set_is_refused_not_skipped():
    d = decide(_ev(base_bpb=2.5, same_set=False), POLICY)
    assert not d.passed and any("another eval set" in r for r in d.reasons)
