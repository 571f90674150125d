from model_registry.gates import Evidence, decide, load_policy

POLICY = load_policy("default")


def _ev(ppl, new_tokens=5, base=None, same_set=True):
    return Evidence(
        metrics={
            "eval/perplexity": ppl,
            "eval/min_new_tokens": new_tokens,
            "eval/tokens_scored": 1000,
        },
        vocab_size=1000,
        eval_set="ds-a/tok-a",
        baseline_metrics=None if base is None else {"eval/perplexity": base},
        baseline_eval_set="ds-a/tok-a" if same_set else "ds-b/tok-b",
        baseline_version=None if base is None else "3",
    )


def test_no_thresholds_means_no_approval():
    d = decide(_ev(1.0), {"alias": "staging"})
    assert not d.passed and "no thresholds" in d.reasons[0]


def test_passes_when_better_than_uniform():
    d = decide(_ev(100.0), POLICY)
    assert d.passed, d.reasons
    assert any("skip baseline: no current holder" in r for r in d.reasons)


def test_rejects_near_uniform_perplexity():
    d = decide(_ev(900.0), POLICY)
    assert not d.passed and any(r.startswith("FAIL perplexity") for r in d.reasons)


def test_rejects_empty_generations():
    assert not decide(_ev(100.0, new_tokens=0), POLICY).passed


def test_must_not_regress_against_comparable_baseline():
    assert not decide(_ev(120.0, base=100.0), POLICY).passed
    assert decide(_ev(104.0, base=100.0), POLICY).passed


def test_baseline_on_other_eval_set_is_skipped():
    d = decide(_ev(120.0, base=100.0, same_set=False), POLICY)
    assert d.passed and any("another eval set" in r for r in d.reasons)
