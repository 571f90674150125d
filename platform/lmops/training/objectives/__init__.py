"""Training objectives, one small module each; the Ray Train loop is shared.

An objective says what a batch is (inputs and labels) and which transformers head
trains on it. ``clm``: next-token prediction on packed blocks. ``mlm``: masked-token
prediction, BERT-style. ``sft``: prompt/response examples, loss on the response only.
"""

from __future__ import annotations

import importlib

OBJECTIVES = {
    "clm": "lmops.training.objectives.clm:CausalLM",
    "mlm": "lmops.training.objectives.mlm:MaskedLM",
    "sft": "lmops.training.objectives.sft:SupervisedFineTuning",
}


def objective_class(name: str):
    module, cls = OBJECTIVES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def check_parent_kind(uri: str, kind: str, objective: str) -> None:
    """Refuse a parent model whose kind (causal or mlm) the objective does not train."""
    from lmops.errors import LmopsError

    wanted = objective_class(objective).model_kind
    if kind != wanted:
        raise LmopsError(
            f"{uri} is a {kind} model; objective '{objective}' trains a {wanted} model"
        )
