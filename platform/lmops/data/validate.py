"""Great Expectations as the data standard's judge and report.

Per-document metrics (computed in our own code, far faster than expectations
over raw text) and one row of dataset statistics are validated against the
versioned suite in ``standard/`` plus expectations derived from the standard
TOML. A failure stops the ingest before anything trains on the data. Data Docs
HTML is built into the version folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

SUITE_DIR = Path(__file__).with_name("standard")


@dataclass
class ValidationOutcome:
    """What GX said: overall success and one line per failed expectation."""

    success: bool
    suite: str
    evaluated: int
    failures: list[str] = field(default_factory=list)
    data_docs: str | None = None

    def summary(self) -> str:
        head = (
            f"GX suite {self.suite}: {self.evaluated - len(self.failures)}/{self.evaluated} passed"
        )
        return head if self.success else head + "; failed: " + "; ".join(self.failures)


def load_suite(name: str) -> dict:
    return json.loads((SUITE_DIR / f"{name.removeprefix('lmops_')}.json").read_text("utf-8"))


def expectations_for(std, lang_mix: dict, stats: dict) -> tuple[list[dict], list[dict]]:
    """The suite's static expectations plus those whose values the standard defines."""
    suite = load_suite(std.expectation_suite)
    docs = list(suite["documents"]) + [
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "lang", "value_set": list(std.allowed_langs)},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "lang_score", "min_value": std.min_lang_score},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": "toxicity",
                "max_value": std.toxicity_threshold,
                "strict_max": True,
            },
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "pii_hits", "max_value": std.max_pii_hits},
        },
    ]
    dataset = list(suite["dataset"]) + [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": col, "min_value": 0.0, "max_value": limit},
        }
        for col, limit in (
            ("reject_rate", std.max_reject_rate),
            ("duplicate_rate", std.max_duplicate_rate),
        )
    ]
    for lang, (lo, hi) in sorted(lang_mix.items()):
        stats.setdefault(f"share_{lang}", 0.0)
        dataset.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": f"share_{lang}", "min_value": lo, "max_value": hi},
            }
        )
    return docs, dataset


def _failure_line(res) -> str:
    cfg = res.expectation_config
    col = cfg.kwargs.get("column", "")
    detail = res.result.get("observed_value", res.result.get("partial_unexpected_list"))
    return f"{cfg.type}({col}) observed {detail}"


def validate_dataset(
    doc_metrics,
    dataset_stats: dict,
    std,
    lang_mix: dict | None = None,
    docs_dir: Path | None = None,
    per_partition: bool = False,
) -> ValidationOutcome:
    """Validate per-document metrics and dataset statistics; optionally build Data Docs.

    ``per_partition``: ``doc_metrics`` is the per-partition statistics table of the Ray
    path, and the document expectations are checked in their per-partition form
    (:mod:`lmops.data.partition_stats`).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import pandas as pd
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    stats = dict(dataset_stats)
    doc_exp, ds_exp = expectations_for(std, lang_mix or {}, stats)
    docs_part = "documents"
    if per_partition:
        from lmops.data.partition_stats import partition_expectations

        doc_exp, docs_part = partition_expectations(doc_exp), "partitions"
        for e in doc_exp:  # an empty table (nothing accepted) still has the columns
            if e["kwargs"]["column"] not in doc_metrics:
                doc_metrics[e["kwargs"]["column"]] = pd.Series([], dtype=float)
    name = load_suite(std.expectation_suite)["name"]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    site_dir = None
    if docs_dir is not None:
        site_dir = docs_dir.with_name(docs_dir.name + ".build")
        context.add_data_docs_site(
            site_name="lmops",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
            },
        )
    source = context.data_sources.add_pandas("lmops")
    definitions, frames = [], {}
    for part, frame, exps in (
        (docs_part, doc_metrics, doc_exp),
        ("dataset", pd.DataFrame([stats]), ds_exp),
    ):
        batch = source.add_dataframe_asset(part).add_batch_definition_whole_dataframe(part)
        suite = context.suites.add(
            gx.ExpectationSuite(
                name=f"{name}.{part}",
                expectations=[
                    ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"]).to_domain_obj()
                    for e in exps
                ],
            )
        )
        definitions.append(
            context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{name}.{part}", data=batch, suite=suite)
            )
        )
        frames[part] = frame
    outcome = ValidationOutcome(True, name, 0)
    for vd in definitions:
        # One checkpoint per part: each validates its own dataframe (batch_parameters).
        cp = context.checkpoints.add(
            gx.Checkpoint(name=f"cp.{vd.name}", validation_definitions=[vd])
        )
        result = cp.run(batch_parameters={"dataframe": frames[vd.name.rsplit(".", 1)[1]]})
        for run in result.run_results.values():
            for res in run.results:
                outcome.evaluated += 1
                if not res.success:
                    outcome.success = False
                    outcome.failures.append(_failure_line(res))
    if site_dir is not None:
        # Once, for both parts' results: an UpdateDataDocsAction per checkpoint built the
        # site twice.
        context.build_data_docs(site_names=["lmops"])
        shutil.rmtree(docs_dir, ignore_errors=True)
        site_dir.rename(docs_dir)
        outcome.data_docs = str(docs_dir / "index.html")
    return outcome
