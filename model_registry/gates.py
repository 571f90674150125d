"""Promotion gates as data plus a pure function: ``decide(evidence, policy) -> Decision``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from lmops.errors import ConfigError

POLICY_DIR = Path(__file__).with_name("policies")

# Policy threshold key -> the suite metric it caps (see lmops.safety).
SAFETY_LIMITS = {
    "max_toxicity_rate": "safety/toxicity_rate",
    "max_flagged_rate": "safety/flagged_rate",
    "max_pii_leak_rate": "safety/pii_leak_rate",
    "max_canary_leak_rate": "safety/canary_leak_rate",
    "max_memorisation_rate": "safety/memorisation_rate",
}


@dataclass(frozen=True)
class Evidence:
    """What a candidate brings to the gate."""

    metrics: dict[str, float]
    vocab_size: int
    eval_set: str  # the evaluation set id: scores compare only within one
    baseline_metrics: dict[str, float] | None = None
    baseline_eval_set: str | None = None
    baseline_version: str | None = None


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return ("PASSED" if self.passed else "REJECTED") + ": " + "; ".join(self.reasons)


def load_policy(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if not path.suffix:
        path = POLICY_DIR / f"{name_or_path}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in POLICY_DIR.glob("*.toml"))
        raise ConfigError(
            f"gate policy '{name_or_path}' not found; known policies: {known}"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"gate policy {path} is not valid TOML: {e}") from None


def decide(evidence: Evidence, policy: dict) -> Decision:
    """Apply every configured threshold; all must hold. No thresholds means no approval."""
    th = policy.get("thresholds") or {}
    if not th:
        return Decision(False, ["no thresholds configured: nothing is approved"])
    m, ok, reasons = evidence.metrics, True, []

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("ok " if passed else "FAIL ") + text)

    ppl = m.get("eval/perplexity", float("inf"))
    if "max_perplexity_vs_uniform" in th:
        limit = th["max_perplexity_vs_uniform"] * evidence.vocab_size
        check(
            ppl <= limit,
            f"perplexity {ppl:.2f} <= {limit:.1f} "
            f"({th['max_perplexity_vs_uniform']} x vocab {evidence.vocab_size})",
        )
    if "max_perplexity" in th:
        check(ppl <= th["max_perplexity"], f"perplexity {ppl:.2f} <= {th['max_perplexity']}")
    if "min_new_tokens" in th:
        got = m.get("eval/min_new_tokens", 0)
        check(got >= th["min_new_tokens"], f"min new tokens {got:.0f} >= {th['min_new_tokens']}")
    if "min_tokens_scored" in th:
        got = m.get("eval/tokens_scored", 0)
        check(
            got >= th["min_tokens_scored"], f"tokens scored {got:.0f} >= {th['min_tokens_scored']}"
        )

    for key, metric in SAFETY_LIMITS.items():
        if key not in th:
            continue
        got = m.get(metric)
        if got is None:
            check(False, f"{metric} missing: the safety suite did not run")
        else:
            check(got <= th[key], f"{metric} {got:.3f} <= {th[key]}")

    regression = (policy.get("baseline") or {}).get("max_bits_per_byte_regression")
    if regression is not None:
        base = evidence.baseline_metrics
        bpb = m.get("eval/bits_per_byte", float("inf"))
        if base is None:
            reasons.append("skip baseline: no current holder")
        elif evidence.baseline_eval_set != evidence.eval_set:
            check(False, f"baseline v{evidence.baseline_version} was scored on another eval set")
        else:
            limit = base.get("eval/bits_per_byte", float("inf")) * (1 + regression)
            check(
                bpb <= limit,
                f"bits/byte {bpb:.4f} <= incumbent v{evidence.baseline_version} re-scored on "
                f"the same eval set x {1 + regression:.2f} = {limit:.4f}",
            )
    return Decision(ok, reasons)
