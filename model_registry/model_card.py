"""Model cards in Hugging Face format, generated from the run's own evidence.

Every statement comes from ``CardInputs``: the dataset manifest, the licence counts
of its records, the metrics and tables of the evaluation, the comparison with the
incumbent, lineage and config. Nothing describes a corpus or a licence by default.

``render_card`` returns two texts: ``hf`` (YAML front matter + body) for the
``README.md`` inside the logged model, and ``display`` (the same body, metadata as a
table) for the run artifact and the version description, where a markdown renderer
would turn front matter into a stray heading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCardData

from lmops.data.licenses import card_license, license_counts
from lmops.home import as_path
from model_registry import card_sections as S
from model_registry import tags as T
from model_registry.card_inputs import CardInputs

if TYPE_CHECKING:
    from lmops.config import RunConfig

CARD_ARTIFACT = "model_card.md"  # run artifact holding the display card
# MLflow's SQL store keeps a model version description in a String(5000) column
# (mlflow/store/model_registry/dbmodels/models.py); longer text fails on MySQL/Postgres.
DESCRIPTION_LIMIT = 5000
# Counts, not evaluation results: tabled in the card, left out of model-index.
NOT_RESULTS = frozenset({"eval/parameters", "eval/tokens_scored"})


@dataclass(frozen=True)
class ModelCardText:
    hf: str  # front matter + body: README.md of the logged model
    display: str  # body with a metadata table: the run artifact model_card.md
    summary: str  # the same with headline metrics only: the version description

    @property
    def description(self) -> str:
        """``summary`` cut to fit MLflow's version description, saying what was cut."""
        return S.fit(self.summary, DESCRIPTION_LIMIT, CARD_ARTIFACT)


def render_card(inputs: CardInputs) -> ModelCardText:
    meta = card_metadata(inputs)
    body = S.body(inputs)
    head = f"# {inputs.model_name}\n\n"
    table = S.metadata_table(meta.to_dict())
    note = (
        f"_Headline metrics only; every metric, table and sample is in the run artifact "
        f"`{CARD_ARTIFACT}` and the eval report `eval/report.html`._\n\n"
    )
    return ModelCardText(
        hf=f"---\n{meta.to_yaml()}\n---\n\n{head}{body}",
        display=f"{head}{table}\n\n{body}",
        summary=S.tables_as_lists(f"{head}{table}\n\n{note}{S.body(inputs, compact=True)}"),
    )


def card_metadata(inputs: CardInputs) -> ModelCardData:
    """The card's YAML header: licence, languages, dataset, task and model-index."""
    m = inputs.manifest
    version_id = m["version_id"]
    eval_set = inputs.eval_set_id or version_id
    results = [
        EvalResult(
            task_type=S.pipeline_tag(inputs.model_kind),
            dataset_type="lmops-held-out",
            dataset_name=eval_set,
            metric_type=name.split("/", 1)[1],
            metric_name=name,
            metric_value=round(value, 6),
        )
        for name, value in sorted(inputs.metrics.items())
        if name.startswith("eval/") and name not in NOT_RESULTS and math.isfinite(value)
    ]
    license_id = card_license(inputs.license_counts)
    return ModelCardData(
        license=license_id,
        # HF asks a card whose licence is "other" to name it.
        license_name="lmops-record-licences" if license_id == "other" else None,
        language=sorted(m.get("counts", {}).get("langs", {})) or None,
        datasets=[version_id],
        library_name="transformers",
        pipeline_tag=S.pipeline_tag(inputs.model_kind),
        tags=["lmops", "causal-lm" if inputs.model_kind == "causal" else "masked-lm"],
        model_name=inputs.model_name,
        eval_results=results or None,
    )


def run_links(lineage: dict[str, str]) -> dict[str, str]:
    """UI paths of the runs named in ``lineage`` (training run, ingest run)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    out = {}
    for key in (T.MLFLOW_RUN, T.INGEST_RUN):
        run_id = lineage.get(key)
        if not run_id:
            continue
        try:
            exp = MlflowClient().get_run(run_id).info.experiment_id
        except MlflowException:
            continue
        out[key] = f"#/experiments/{exp}/runs/{run_id}"
    return out


def card_for_run(
    config: RunConfig,
    ds: Any,
    ev: Any,
    lineage: dict[str, str],
    version: str | None = None,
) -> ModelCardText:
    """The card of a pipeline run: manifest and licences read from the version folder.

    ``ds`` has the dataset version's ``path``; ``ev`` is the evaluation result (kind,
    metrics, tables, comparison, eval_set_id). Typed loosely because those types are
    defined by the flows in ``pipelines``, which this package must not import.
    """
    from lmops.data.catalog import load_manifest

    path = as_path(ds.path)
    return render_card(
        CardInputs(
            model_name=config.registry.model_name,
            model_kind=ev.kind,
            intended_use=config.registry.intended_use,
            manifest=load_manifest(path),
            license_counts=license_counts(path),
            metrics=ev.metrics,
            tables=ev.tables,
            comparison=ev.comparison,
            eval_set=ev.eval_set_id,
            lineage=lineage,
            links=run_links(lineage),
            config=config.model_dump(mode="json"),
            version=version,
            alias="staging",
        )
    )
