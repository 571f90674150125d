"""Loading the model under evaluation: clear errors for what a user can get wrong."""

import pytest

from lmops.errors import LmopsError
from lmops.evaluation.loading import load_for_eval


def test_model_folder_without_tokenizer_is_a_clear_error(tiny_lm, tmp_path):
    model, tok = tiny_lm
    model.save_pretrained(tmp_path)
    with pytest.raises(LmopsError, match="has no tokenizer"):
        load_for_eval(str(tmp_path), "cpu")
    tok.save_pretrained(tmp_path)  # the same folder with its tokenizer loads
    loaded = load_for_eval(str(tmp_path), "cpu")
    assert loaded.kind == "causal" and loaded.tokenizer.eos_token_id == tok.eos_token_id


def test_unknown_model_reference_is_a_clear_error(tmp_path):
    with pytest.raises(LmopsError, match="neither a folder nor an MLflow URI"):
        load_for_eval(str(tmp_path / "missing"), "cpu")


def test_unknown_registry_version_is_a_clear_error(tmp_path, monkeypatch):
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with pytest.raises(LmopsError, match="does not exist in the registry"):
            load_for_eval("models:/nosuch/1", "cpu")
    finally:
        mlflow.set_tracking_uri(previous)
