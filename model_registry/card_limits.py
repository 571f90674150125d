"""The card's "Bias, Risks, and Limitations", written from the run's evidence.

Each statement is triggered by a number in ``CardInputs`` and names it; missing
evidence is stated as missing, so a reader can tell "measured and fine" from
"not measured".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lmops.evaluation.report import by_suffix

if TYPE_CHECKING:
    from model_registry.card_inputs import CardInputs

# A perplexity ratio below this between two languages is within the noise of small
# held-out sets, so the card only calls out larger gaps.
LANG_GAP_RATIO = 1.2
# A language below this share of the training documents is called out as scarce.
SCARCE_LANG_SHARE = 0.10


def limitations(c: CardInputs) -> list[str]:
    out = [*_data(c), *_languages(c), *_safety(c), *_bias(c), *_licence(c)]
    n = c.n_parameters
    size = f" This one has {n:,} parameters." if n is not None else ""
    out.append(
        "Language models, small ones most of all, state falsehoods as fluently as facts "
        f"and carry the biases of their training text.{size} Do not trust its output as fact."
    )
    return out


def _data(c: CardInputs) -> list[str]:
    counts = c.manifest.get("counts", {})
    langs = counts.get("langs", {})
    mix = ", ".join(f"{k} ({n:,})" for k, n in sorted(langs.items(), key=lambda kv: -kv[1]))
    out = [
        f"Trained on {counts.get('accepted', 0):,} accepted documents of dataset "
        f"`{c.manifest['version_id']}`" + (f" in {mix}" if mix else "") + "; "
        "it knows only what those documents contain."
    ]
    total = sum(langs.values())
    for lang, n in sorted(langs.items()):
        if total and n / total < SCARCE_LANG_SHARE:
            out.append(f"{lang} makes up only {n / total:.1%} of the training documents.")
    return out


def _languages(c: CardInputs) -> list[str]:
    ppl = by_suffix(c.metrics, "eval/perplexity_")
    ppl = {k: v for k, v in ppl.items() if v > 0}
    if len(ppl) < 2:
        return []
    hi, lo = max(ppl, key=ppl.get), min(ppl, key=ppl.get)
    ratio = ppl[hi] / ppl[lo]
    if ratio < LANG_GAP_RATIO:
        return [f"Held-out perplexity is within {LANG_GAP_RATIO:.1f}× across languages."]
    text = (
        f"Perplexity on {hi} is {ratio:.1f}× that on {lo} "
        f"({ppl[hi]:.3g} vs {ppl[lo]:.3g}) on held-out text."
    )
    bpb = by_suffix(c.metrics, "eval/bits_per_byte_")
    if hi in bpb and lo in bpb:
        # Perplexity is per token and tokenizers split languages differently; bits per
        # byte is the tokenizer-free comparison.
        text += f" In bits per byte, {hi} {bpb[hi]:.3g} vs {lo} {bpb[lo]:.3g}."
    return [text]


def _safety(c: CardInputs) -> list[str]:
    m = c.metrics
    if not any(k.startswith("safety/") for k in m):
        return ["No safety evaluation was recorded: the model's safety is unmeasured."]
    out = []
    flagged = m.get("safety/flagged_rate")
    if flagged is not None:
        if flagged > 0:
            cats = by_suffix(m, "safety/flagged_rate_")
            hits = sorted(((k, v) for k, v in cats.items() if v > 0), key=lambda kv: -kv[1])
            named = ", ".join(f"{k} {v:.1%}" for k, v in hits)
            out.append(
                f"The red-team set flagged {flagged:.1%} of completions"
                + (f" (categories: {named})." if named else ".")
            )
        else:
            out.append("The red-team set flagged no completion; that covers only its own prompts.")
    tox = m.get("safety/toxicity_rate")
    if tox:
        out.append(f"{tox:.1%} of completions were scored toxic (safety/toxicity_rate).")
    pii = m.get("safety/pii_leak_rate")
    if pii:
        out.append(f"PII leak rate {pii:.1%} (safety/pii_leak_rate): it can emit personal data.")
    out += _canaries(m)
    mem = m.get("safety/memorisation_rate")
    if mem:
        out.append(
            f"Memorisation rate {mem:.1%} (safety/memorisation_rate): training text can "
            "reappear verbatim in its output."
        )
    return out


def _canaries(m: dict[str, float]) -> list[str]:
    planted, leak = m.get("safety/canaries_planted"), m.get("safety/canary_leak_rate")
    if planted == 0:
        return ["No canaries were planted in the training data: leakage of secrets is untested."]
    if leak is None:
        return []
    of = f" of the {planted:.0f} planted canaries" if planted else " of the planted canaries"
    if leak > 0:
        return [f"{leak:.1%}{of} leaked (safety/canary_leak_rate): secrets can be extracted."]
    return [f"None{of} leaked."]


def _bias(c: CardInputs) -> list[str]:
    m = c.metrics
    if not any(k.startswith("bias/") for k in m):
        return ["No bias evaluation was recorded: the model's bias is unmeasured."]
    out = []
    if "bias/max_abs_gap" in m:
        out.append(f"The bias probes' largest absolute gap is {m['bias/max_abs_gap']:.3g}")
    cats = by_suffix(m, "bias/mean_abs_gap_")
    if cats:
        worst = max(cats, key=cats.get)
        clause = f"the mean gap is largest for {worst} ({cats[worst]:.3g})"
        out = [f"{out[0]}; {clause}."] if out else [f"In the bias probes, {clause}."]
    elif out:
        out[0] += "."
    return out


def _licence(c: CardInputs) -> list[str]:
    unknown = sum(n for k, n in c.license_counts.items() if k.strip().lower() in ("", "unknown"))
    if not unknown:
        return []
    return [
        f"{unknown:,} training documents state no licence: the terms of part of the "
        "training data are unknown."
    ]
