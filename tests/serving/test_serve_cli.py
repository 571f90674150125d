"""`lmops serve` refuses to start, with one clear line, on what a user gets wrong."""

from __future__ import annotations

import pytest

from conftest import assert_clean_error, run_cli


def assert_unsigned_error(proc, needle: str):
    """--allow-unsigned says so loudly first, then the one error line."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "UNSIGNED MODE" in lines[0] and needle in lines[-1] and len(lines) == 2, lines


@pytest.fixture
def home(tmp_path):
    return tmp_path / ".lmops"


def test_no_keys_configured(home, tmp_path):
    proc = run_cli(["serve", "--model", str(tmp_path)], home, timeout=120)
    assert_clean_error(proc, "no API keys are configured")


def test_no_auth_only_on_loopback(home, tmp_path):
    proc = run_cli(["serve", "--model", str(tmp_path), "--no-auth", "--host", "0.0.0.0"], home)
    assert_clean_error(proc, "--no-auth serves only on 127.0.0.1")


def test_a_folder_needs_the_development_flag(home, model_dir):
    proc = run_cli(["serve", "--model", str(model_dir), "--no-auth"], home, timeout=120)
    assert_clean_error(proc, "carries no signature")


def test_a_folder_that_is_no_model(home, tmp_path):
    proc = run_cli(
        ["serve", "--model", str(tmp_path), "--no-auth", "--allow-unsigned"], home, timeout=120
    )
    assert_unsigned_error(proc, "is not a Hugging Face model folder")


def test_an_unknown_registry_model(home):
    proc = run_cli(["serve", "--model", "models:/nope@production", "--no-auth"], home, timeout=180)
    assert_clean_error(proc, "does not exist in the registry")


def test_int8_on_cpu_only_and_bf16_on_gpu_only(home, model_dir):
    proc = run_cli(
        ["serve", "--model", str(model_dir), "--no-auth", "--allow-unsigned", "--quantize", "bf16"]
        + ["--device", "cpu"],
        home,
        timeout=120,
    )
    assert_unsigned_error(proc, "bf16 is for GPUs")


def test_no_verifiable_holder_at_start_up(home, tmp_path):
    """An alias set with the client on a version nobody signed: one line, exit 4."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    client.create_registered_model("unsigned-lm")
    mv = client.create_model_version("unsigned-lm", source=str(tmp_path))
    client.set_registered_model_alias("unsigned-lm", "production", mv.version)
    proc = run_cli(
        ["serve", "--model", "models:/unsigned-lm@production", "--no-auth"],
        home,
        timeout=180,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert proc.returncode == 4
    assert_clean_error(proc, "unsigned-lm v1 carries no signed evidence")
