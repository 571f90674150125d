"""Every tag name lmops writes to the registry, in one place.

Lineage and gate tags use the ``lmops.`` prefix. Evidence tags keep the metric's
family as prefix (``eval.perplexity``, ``safety.score``, ``bias.mean_abs_gap``) so a
reviewer reads them as they appear in the eval report.
"""

from __future__ import annotations

DATASET_VERSION = "lmops.dataset_version"
MLFLOW_RUN = "lmops.mlflow_run"
CODE_COMMIT = "lmops.code_commit"
CONFIG = "lmops.config"
CONFIG_DIGEST = "lmops.config_digest"
TOKENIZER = "lmops.tokenizer"
EVAL_SET = "lmops.eval_set"
MODEL_KIND = "lmops.model_kind"
TRAIN_CACHE_KEY = "lmops.train_cache_key"
EVIDENCE_DIGEST = "lmops.evidence_digest"
DATA_VALIDATION = "lmops.data_validation"  # "passed" or "failed": the dataset's GX suite
REGISTERED_BY = "lmops.registered_by"  # identity that registered the version
INGEST_RUN = "lmops.ingest_run"  # MLflow run holding the dataset's validation evidence
# The data standard the dataset passed, from its manifest (as on the ingest run).
DATA_STANDARD = "lmops.data_standard"  # "v1 1.1.0"
DATA_PROFILE = "lmops.data_profile"  # "short", or "NAME (extends web)" for a profile file
STANDARD_DIGEST = "lmops.standard_digest"  # of the resolved standard, in the dataset id
COMPARED_WITH = "lmops.compared_with"
# The signed copy of all of the above that gates and servers check (attestation.py);
# every other tag is the human-readable copy.
SIGNED_EVIDENCE = "lmops.signed_evidence"  # DSSE envelope: the evidence statement
MODEL_SIGNATURE = "lmops.model_signature"  # model-signing bundle over the model's files
OBJECTIVE = "lmops.objective"  # clm, mlm or sft
PARENT_MODEL = "lmops.parent_model"  # NAME/VERSION a fine-tuned or continued model started from
LORA = "lmops.lora"  # LoRA settings of a version whose adapter was merged into the parent

# Tags of registry events (runs in the audit and approvals experiments).
EVENT = "lmops.event"
EVENT_MODEL = "lmops.model"
EVENT_VERSION = "lmops.version"
EVENT_ALIAS = "lmops.alias"
EVENT_ACTOR = "lmops.actor"
EVENT_RECORD = "lmops.event_record"  # the whole event as JSON (history.Event)
SIGNED_RECORD = "lmops.signed_record"  # DSSE envelope of an alias move (promotion record)
NOTE = "mlflow.note.content"  # the run description MLflow's UI renders as markdown

# Written only by the lmops-auth server app (model_registry/mlflow_server_app.py),
# which refuses them from any client: who the server authenticated.
SERVER_USER = "lmops.server.user"  # run tag the lmops-auth server app writes: who created the run
SERVER_CREATED_BY = (
    "lmops.server.created_by"  # version tag lmops-auth writes: who created the version
)

# Tags of evaluation runs (one run per model version and evaluation set).
RUN_KIND = "lmops.kind"
EVALUATED_MODEL = "lmops.evaluated_model"
EVAL_CONFIG_DIGEST = "lmops.eval_config_digest"

EVIDENCE_FAMILIES = ("eval", "safety", "bias")


def gate(alias: str) -> str:
    return f"lmops.gate.{alias}"


def gate_reasons(alias: str) -> str:
    return f"lmops.gate.{alias}.reasons"


def audit(timestamp: str) -> str:
    return f"lmops.audit.{timestamp}"
