"""Model cards in Hugging Face format: YAML metadata plus the standard sections."""

from __future__ import annotations

import json


def render_model_card(
    name: str,
    config: dict,
    dataset: dict,
    metrics: dict[str, float],
    samples: list[dict],
    lineage: dict[str, str],
) -> str:
    meta = {
        "license": "apache-2.0",
        "language": sorted(dataset.get("langs", {})),
        "datasets": [dataset["version_id"]],
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": dataset["version_id"], "type": "lmops-held-out"},
                        "metrics": [
                            {
                                "type": "perplexity",
                                "value": round(metrics.get("eval/perplexity", 0.0), 3),
                            }
                        ],
                    }
                ],
            }
        ],
    }
    lines = [
        "---",
        *(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in meta.items()),
        "---",
        "",
        f"# {name}",
        "",
        "A small causal language model trained by the lmops pipeline.",
        "",
        "## Intended use",
        "Demonstration and testing of the lmops platform: tokenizer, training, "
        "evaluation, registry and serving. Not for production text generation.",
        "",
        "## Training data",
        f"Dataset version `{dataset['version_id']}`: {dataset['accepted']} accepted "
        f"documents ({dataset['quarantined']} quarantined), languages "
        f"{dataset.get('langs')}.",
        "",
        "## Evaluation",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())),
        "",
        "## Sample generations (greedy)",
        *(f"- `{s['prompt']}` → `{s['completion']!r}`" for s in samples),
        "",
        "## Bias, Risks, and Limitations",
        "Trained on a small corpus (Python documentation and a bilingual set), the "
        "model reproduces its style and errors, knows little of the world and has "
        "no safety tuning. Its output must not be trusted as fact.",
        "",
        "## Lineage",
        *(f"- {k}: `{v}`" for k, v in sorted(lineage.items())),
        "",
        "## Configuration",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
