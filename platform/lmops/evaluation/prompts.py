"""Candidate prompt templates, kept as versions of one prompt in MLflow's prompt registry.

The article's "automatic prompts": each task has a few hand-written candidate templates
(``{{text}}`` is the passage); the prompt-task scorer fills them with a dev set, scores
the completions, and moves an alias (``PromptTaskConfig.alias``) to the best version,
so callers load ``prompts:/<name>@<alias>`` instead of hard-coding a template.

Registering is idempotent: every version is tagged with its template's SHA-256, and a
template whose hash is already there is looked up, not registered again, so running
the suite twice adds no versions. Versions registered by hand are kept but not scored;
add a template to :data:`CANDIDATES` to make it a candidate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError

HASH_TAG = "lmops.template_sha256"
TASK_TAG = "lmops.task"
LANG_TAG = "lmops.template_lang"
# Set on the version the alias was last moved to: the model it was best for.
MODEL_TAG = "lmops.selected_for_model"


@dataclass(frozen=True)
class Template:
    text: str
    lang: str  # the language the template's own words are in


CANDIDATES: dict[str, tuple[Template, ...]] = {
    "summarize": (
        Template("原文: {{text}}\n\n摘要:", "zh"),  # the article's template
        Template("Text: {{text}}\n\nSummary:", "en"),
        Template("{{text}}\n\nTL;DR:", "en"),
        Template("Article: {{text}}\nIn one sentence:", "en"),
    ),
}


def template_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _registry_error(name: str, err: Exception) -> LmopsError:
    return LmopsError(
        f"prompt registry at {mlflow.get_registry_uri()} failed for prompt '{name}': {err}. "
        "Check the MLflow tracking URI (MLFLOW_TRACKING_URI or LMOPS_HOME)."
    )


def _all_versions(client: MlflowClient, name: str) -> list:
    out, token = [], None
    while True:
        page = client.search_prompt_versions(name, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def register_candidates(name: str, task: str = "summarize") -> list:
    """The registry's ``PromptVersion`` of every candidate of ``task``, registering missing ones.

    Returned in :data:`CANDIDATES` order. If two versions hold the same template (two
    suites registering at once), the lower version is used.
    """
    if task not in CANDIDATES:
        raise LmopsError(f"no prompt templates for task '{task}'; known: {sorted(CANDIDATES)}")
    client = MlflowClient()
    try:
        existing: dict[str, object] = {}
        if client.get_prompt(name) is not None:
            for v in sorted(_all_versions(client, name), key=lambda v: int(v.version)):
                existing.setdefault(v.tags.get(HASH_TAG), v)
        out = []
        for t in CANDIDATES[task]:
            digest = template_hash(t.text)
            if digest not in existing:
                existing[digest] = mlflow.genai.register_prompt(
                    name=name,
                    template=t.text,
                    commit_message=f"lmops candidate template for {task}",
                    tags={HASH_TAG: digest, TASK_TAG: task, LANG_TAG: t.lang},
                )
            out.append(existing[digest])
        return out
    except MlflowException as err:
        raise _registry_error(name, err) from err


def load_version(name: str, version: int | str):
    """One version, as the registry holds it (not linked to any logged model)."""
    try:
        return mlflow.genai.load_prompt(name, version=version, link_to_model=False)
    except MlflowException as err:
        raise _registry_error(name, err) from err


def load_alias(name: str, alias: str):
    """The version ``alias`` points at now (uncached), or None if the alias is not set."""
    return mlflow.genai.load_prompt(
        f"prompts:/{name}@{alias}", allow_missing=True, link_to_model=False, cache_ttl_seconds=0
    )


def select_best(scores: dict[int, float]) -> int:
    """The version with the highest score; a tie goes to the lower (older) version."""
    if not scores:
        raise LmopsError("no candidate templates were scored; cannot select a best version")
    return min(scores, key=lambda v: (-scores[v], v))


def move_alias(name: str, alias: str, version: int, model_id: str | None = None) -> None:
    """Point ``alias`` at ``version`` and tag that version with the model it was chosen for.

    The alias is one per prompt, not per model: after this call it names the template
    best for the model evaluated last, whatever model a later caller serves.
    """
    try:
        mlflow.genai.set_prompt_alias(name=name, alias=alias, version=version)
        if model_id:
            mlflow.genai.set_prompt_version_tag(name, version, MODEL_TAG, model_id)
    except MlflowException as err:
        raise _registry_error(name, err) from err
