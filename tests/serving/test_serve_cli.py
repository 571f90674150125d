"""`lmops serve` refuses to start, with one clear line, on what a user gets wrong."""

from __future__ import annotations

import pytest

from conftest import assert_clean_error, run_cli


@pytest.fixture
def home(tmp_path):
    return tmp_path / ".lmops"


def test_no_keys_configured(home, tmp_path):
    proc = run_cli(["serve", "--model", str(tmp_path)], home, timeout=120)
    assert_clean_error(proc, "no API keys are configured")


def test_no_auth_only_on_loopback(home, tmp_path):
    proc = run_cli(["serve", "--model", str(tmp_path), "--no-auth", "--host", "0.0.0.0"], home)
    assert_clean_error(proc, "--no-auth serves only on 127.0.0.1")


def test_a_folder_that_is_no_model(home, tmp_path):
    proc = run_cli(["serve", "--model", str(tmp_path), "--no-auth"], home, timeout=120)
    assert_clean_error(proc, "is not a Hugging Face model folder")


def test_an_unknown_registry_model(home):
    proc = run_cli(["serve", "--model", "models:/nope@production", "--no-auth"], home, timeout=180)
    assert_clean_error(proc, "does not exist in the registry")


def test_int8_on_cpu_only_and_bf16_on_gpu_only(home, model_dir):
    proc = run_cli(
        ["serve", "--model", str(model_dir), "--no-auth", "--quantize", "bf16", "--device", "cpu"],
        home,
        timeout=120,
    )
    assert_clean_error(proc, "bf16 is for GPUs")
