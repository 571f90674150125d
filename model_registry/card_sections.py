"""The body sections of a model card, each built only from ``CardInputs``.

A section with no evidence says that nothing was recorded; it never fills the gap
with a default description.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from lmops.data.licenses import license_note
from lmops.evaluation.report import by_suffix
from model_registry.card_limits import limitations

if TYPE_CHECKING:
    from model_registry.card_inputs import CardInputs

SAMPLE_ROWS = 10  # sample generations shown in the card
TOP_REASONS = 5  # quarantine reasons shown in the card


def pipeline_tag(kind: str) -> str:
    return "text-generation" if kind == "causal" else "fill-mask"


# The metrics a reviewer reads first; the compact card (version description) shows
# only these, the full card every metric.
HEADLINE = frozenset(
    {
        "eval/perplexity",
        "eval/bits_per_byte",
        "eval/tokens_scored",
        "eval/rougeL",
        "eval/masked_accuracy",
        "safety/score",
        "safety/toxicity_rate",
        "safety/flagged_rate",
        "safety/pii_leak_rate",
        "safety/canary_leak_rate",
        "safety/memorisation_rate",
        "bias/mean_abs_gap",
        "bias/max_abs_gap",
        "bias/preference_rate",
    }
)
# Suffixes that share a per-category prefix but are not categories.
NOT_CATEGORIES = frozenset({"en", "zh", "per_token"})


def body(c: CardInputs, compact: bool = False) -> str:
    """Every section after the title, in reading order; ``compact`` keeps headlines only."""
    sections = [
        ("Model details", model_details(c)),
        ("Intended use", intended_use(c)),
        ("Training data", training_data(c)),
        ("Licence", licence(c)),
        ("Evaluation", evaluation(c, compact)),
        ("Sample generations", "" if compact else samples(c)),
        ("Safety", family_section(c, "safety", "flagged_rate_", "flagged rate", compact)),
        ("Bias", family_section(c, "bias", "mean_abs_gap_", "mean absolute gap", compact)),
        ("Comparison with the incumbent", comparison(c, compact)),
        ("Bias, Risks, and Limitations", "\n".join(f"- {s}" for s in limitations(c))),
        ("Lineage", lineage(c)),
        ("How to load", how_to_load(c)),
        ("Configuration", "" if compact else configuration(c)),
    ]
    return "\n\n".join(f"## {title}\n\n{text}" for title, text in sections if text) + "\n"


def metadata_table(meta: dict[str, Any]) -> str:
    """The YAML header's fields as a table, for renderers that do not read front matter."""
    rows = []
    for key, value in meta.items():
        if key == "model-index":
            n = sum(len(r["metrics"]) for m in value for r in m["results"])
            value = f"{n} results (see Evaluation)"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        rows.append((key, f"`{value}`" if key != "model-index" else value))
    return table(["metadata", "value"], rows)


def model_details(c: CardInputs) -> str:
    kind = {
        "causal": "causal language model (text generation)",
        "mlm": "masked language model (fill-mask)",
    }[c.model_kind]
    n = c.n_parameters
    lines = [
        f"- Name: `{c.model_name}`" + (f", version {c.version}" if c.version else ""),
        f"- Kind: {kind}",
        f"- Parameters: {f'{n:,}' if n is not None else 'not recorded'}",
    ]
    arch = c.config.get("model", {})
    if arch:
        keys = ("arch", "hidden_size", "num_layers", "num_heads", "seq_len")
        lines.append("- Architecture: " + ", ".join(f"{k}={arch[k]}" for k in keys if k in arch))
    if "lmops.tokenizer" in c.lineage:
        lines.append(f"- Tokenizer: `{c.lineage['lmops.tokenizer']}`")
    # The runs as links here too: a long description may drop the Lineage section.
    for key, what in (("lmops.mlflow_run", "Trained"), ("lmops.ingest_run", "Data validated")):
        if key in c.lineage:
            lines.append(f"- {what} in MLflow run {_linked(c, key)}")
    if "lmops.objective" in c.lineage:
        lines.append(f"- Training objective: {c.lineage['lmops.objective']}")
    if "lmops.parent_model" in c.lineage:
        lines.append(f"- Started from: `{c.lineage['lmops.parent_model']}`")
    if "lmops.lora" in c.lineage:
        lines.append(f"- LoRA: {c.lineage['lmops.lora']}")
    lines.append("- Library: transformers")
    return "\n".join(lines)


def intended_use(c: CardInputs) -> str:
    stated = c.intended_use.strip() or "The run config states no intended use."
    if c.out_of_scope_use.strip():
        out = c.out_of_scope_use.strip()
    else:
        items = []
        langs = sorted(c.manifest.get("counts", {}).get("langs", {}))
        if langs:
            items.append(
                f"- Text in languages other than {', '.join(langs)}: the training data holds none."
            )
        if c.model_kind == "mlm":
            items.append("- Free text generation: a masked language model fills masked tokens.")
        items.append(
            "- Any use that takes the output as true, safe or fair without human review "
            "(see Bias, Risks, and Limitations)."
        )
        out = "\n".join(items)
    return f"{stated}\n\n### Out-of-scope use\n\n{out}"


def training_data(c: CardInputs) -> str:
    m = c.manifest
    counts = m.get("counts", {})
    std = m.get("standard") or {}  # Standard.summary(); older manifests lack parts of it
    std_name, std_version = std.get("name"), std.get("version") or m.get("standard_version")
    standard = " ".join(x for x in (f"`{std_name}`" if std_name else "", std_version or "") if x)
    if standard and std.get("digest"):
        standard += f" (digest `{std['digest']}`)"
    profile = std.get("profile") or m.get("profile")
    if isinstance(profile, dict):
        profile = json.dumps(profile, sort_keys=True)
    lines = [
        f"Dataset version `{m['version_id']}`, data standard {standard or 'not recorded'}, "
        f"profile {f'`{profile}`' if profile else 'not recorded'}.",
        "",
        f"- Input records: {counts.get('input', '?')}; accepted: {counts.get('accepted', '?')}; "
        f"quarantined: {counts.get('quarantined', '?')}",
    ]
    for line in std.get("overrides", []):
        lines.append(f"- Run config override of the profile: `{line}`")
    if "accepted_bytes" in counts:
        lines.append(f"- Accepted text: {counts['accepted_bytes']:,} bytes")
    sources = [s["path"] if isinstance(s, dict) else str(s) for s in m.get("sources", [])]
    if sources:
        shown = ", ".join(f"`{s}`" for s in sources[:5])
        lines.append(f"- Sources ({len(sources)}): {shown}{', …' if len(sources) > 5 else ''}")
    v = m.get("validation")
    if isinstance(v, dict):
        suite = f" (suite `{m['expectation_suite']}`)" if m.get("expectation_suite") else ""
        verdict = "passed" if v.get("success") else "FAILED"
        lines.append(f"- Data validation{suite}: {verdict}, {v.get('evaluated', '?')} expectations")
    langs = counts.get("langs", {})
    if langs:
        total = sum(langs.values()) or 1
        rows = [(k, n, f"{n / total:.1%}") for k, n in sorted(langs.items(), key=lambda kv: -kv[1])]
        lines += [
            "",
            "Accepted documents by language:",
            "",
            table(["language", "documents", "share"], rows),
        ]
    reasons = counts.get("reasons", {})
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
        title = f"Top quarantine reasons ({len(top)} of {len(reasons)}):"
        lines += ["", title, "", table(["reason", "records"], top)]
    elif "reasons" in counts:
        lines += ["", "No record was quarantined."]
    return "\n".join(lines)


def licence(c: CardInputs) -> str:
    counts = c.license_counts
    total = sum(counts.values()) or 1
    rows = [(name or "unknown", n, f"{n / total:.1%}") for name, n in counts.items() if n > 0]
    text = license_note(counts) + " Derived from the `license` field of the accepted records."
    return text + ("\n\n" + table(["record licence", "documents", "share"], rows) if rows else "")


def evaluation(c: CardInputs, compact: bool = False) -> str:
    rows = [
        (k, fmt(v))
        for k, v in sorted(c.metrics.items())
        if k.startswith("eval/") and (not compact or k in HEADLINE)
    ]
    if not rows:
        return "No eval/* metrics were recorded."
    eval_set = c.eval_set_id
    parts = [
        f"Held-out evaluation set `{eval_set}`." if eval_set else "",
        table(["metric", "value"], rows),
    ]
    ppl = by_suffix(c.metrics, "eval/perplexity_")
    bpb = by_suffix(c.metrics, "eval/bits_per_byte_")
    langs = c.manifest.get("counts", {}).get("langs", {})
    if ppl or bpb:
        per = [
            (lang, fmt(ppl.get(lang)), fmt(bpb.get(lang)), langs.get(lang, 0))
            for lang in sorted(set(ppl) | set(bpb))
        ]
        header = ["language", "perplexity", "bits per byte", "training documents"]
        parts += ["Per language:", table(header, per)]
    return "\n\n".join(p for p in parts if p)


def samples(c: CardInputs) -> str:
    rows = c.tables.get("eval_samples", [])
    if not rows:
        return ""
    shown = [
        (r.get("strategy", ""), r.get("prompt", ""), _clip(str(r.get("completion", "")), 160))
        for r in rows[:SAMPLE_ROWS]
    ]
    note = f"First {len(shown)} of {len(rows)} generations." if len(rows) > len(shown) else ""
    return "\n\n".join(p for p in (note, table(["strategy", "prompt", "completion"], shown)) if p)


def family_section(
    c: CardInputs, family: str, per_category: str, label: str, compact: bool = False
) -> str:
    prefix = f"{family}/"
    cats = {
        k: v
        for k, v in by_suffix(c.metrics, prefix + per_category).items()
        if k not in NOT_CATEGORIES
    }
    in_cats = {prefix + per_category + k for k in cats}
    overall = [
        (k, fmt(v))
        for k, v in sorted(c.metrics.items())
        if k.startswith(prefix) and k not in in_cats and (not compact or k in HEADLINE)
    ]
    if not overall and not cats:
        return f"No {family}/* metrics were recorded: this model's {family} is unmeasured."
    parts = [table(["metric", "value"], overall)] if overall else []
    if cats:
        parts += [
            "Per category:",
            table(["category", label], [(k, fmt(v)) for k, v in cats.items()]),
        ]
    return "\n\n".join(parts)


def comparison(c: CardInputs, compact: bool = False) -> str:
    cmp = c.comparison
    if cmp is None:
        return "No comparison with an incumbent was recorded for this model."
    inc = cmp.incumbent
    rows = [
        (name, fmt(p.candidate), fmt(p.incumbent), fmt(p.candidate - p.incumbent))
        for name, p in sorted(cmp.metrics.items())
        if not compact or name in HEADLINE
    ]
    head = (
        f"Incumbent: `{inc.name}` version {inc.version} (@{inc.alias}), re-scored on the "
        f"same eval set `{cmp.eval_set}`."
    )
    header = ["metric", "this model", f"v{inc.version}", "difference"]
    return head + ("\n\n" + table(header, rows) if rows else "\n\nNo metric was compared.")


def _linked(c: CardInputs, key: str) -> str:
    """A lineage value, as a link the MLflow UI opens where it names a run (``c.links``)."""
    value = c.lineage[key]
    return f"[`{value}`]({c.links[key]})" if key in c.links else f"`{value}`"


def lineage(c: CardInputs) -> str:
    """Lineage tags; runs are links the MLflow UI opens (``c.links``: tag -> UI path)."""
    return "\n".join(f"- {k}: {_linked(c, k)}" for k in sorted(c.lineage))


def how_to_load(c: CardInputs) -> str:
    ref = c.version or "<version>"
    use = (
        'print(pipe("Once upon a time", max_new_tokens=32))'
        if c.model_kind == "causal"
        else 'print(pipe(f"Paris is the {pipe.tokenizer.mask_token} of France."))'
    )
    text = (
        f'```python\nimport mlflow\n\npipe = mlflow.transformers.load_model("models:/'
        f'{c.model_name}/{ref}")\n{use}\n```'
    )
    if c.version is None:
        text += "\n\n`<version>` is this model's version number in the MLflow registry."
    if c.alias:
        text += f"\n\n`models:/{c.model_name}@{c.alias}` loads whichever version holds @{c.alias}."
    return text


def configuration(c: CardInputs) -> str:
    if not c.config:
        return ""
    return f"```json\n{json.dumps(c.config, indent=2, sort_keys=True)}\n```"


def fit(display: str, limit: int, artifact: str) -> str:
    """``display`` within ``limit`` characters: whole sections dropped, least useful first."""
    if len(display) <= limit:
        return display
    head, *rest = display.split("\n## ")
    sections = {s.split("\n", 1)[0]: s for s in rest}
    dropped: list[str] = []

    def text() -> str:
        kept = [s for t, s in sections.items() if t not in dropped]
        names = ", ".join(dropped)
        note = (
            f"_Shortened to fit MLflow's {limit}-character version description; left out: "
            f"{names}. The full card is the run artifact `{artifact}`._"
        )
        return "\n## ".join([head.rstrip() + "\n\n" + note + "\n", *kept])

    for title in _DROP_ORDER:
        if title in sections and len(text()) > limit:
            dropped.append(title)
    out = text()
    if len(out) > limit:  # still too long: cut at a line, keeping the note on top
        out = out[: out.rfind("\n", 0, limit - 1)] + "\n"
    return out


# Least useful in a version description first; limitations stay longest.
_DROP_ORDER = (
    "Configuration",
    "Sample generations",
    "Lineage",
    "How to load",
    "Licence",
    "Training data",
    "Comparison with the incumbent",
    "Bias",
    "Safety",
    "Evaluation",
    "Intended use",
    "Model details",
)


def tables_as_lists(md: str) -> str:
    """Markdown tables rewritten as bullet lists.

    MLflow's version page renders a description's tables without borders or padding,
    so cells run together ("eval/tokens_scored3,049"); lists read cleanly there. Rows
    become ``- first: header value, header value``.
    """
    out: list[str] = []
    lines = md.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        is_table = line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---")
        if not is_table:
            out.append(line)
            i += 1
            continue
        header = [h.strip() for h in line.strip("|").split("|")]
        i += 2
        while i < len(lines) and lines[i].startswith("| "):
            cells = [c.strip() for c in lines[i].strip("|").split("|")]
            rest = ", ".join(f"{h} {c}" for h, c in zip(header[1:], cells[1:], strict=False))
            out.append(f"- **{cells[0]}**" + (f": {rest}" if len(header) > 2 else f": {cells[1]}"))
            i += 1
    return "\n".join(out)


def table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) >= 1):
        return f"{int(v):,}"
    return f"{v:.4g}"


def _cell(v: Any) -> str:
    # A table cell is one line; a pipe would end it and raw HTML would render.
    text = str(v).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
