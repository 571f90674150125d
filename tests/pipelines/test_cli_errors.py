"""Errors the user can fix: one line, non-zero exit, no traceback."""

from conftest import assert_clean_error as _assert_clean_error
from conftest import run_cli


def test_missing_source(tmp_path):
    proc = run_cli(
        ["run", "--config", "tiny", "--source", str(tmp_path / "nope.jsonl")],
        tmp_path / ".lmops",
        timeout=120,
    )
    _assert_clean_error(proc, "does not exist")


def test_unreadable_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    proc = run_cli(["run", "--config", str(bad)], tmp_path / ".lmops", timeout=120)
    _assert_clean_error(proc, "not valid TOML")


def test_missing_config_file(tmp_path):
    proc = run_cli(
        ["run", "--config", str(tmp_path / "missing.toml")], tmp_path / ".lmops", timeout=120
    )
    _assert_clean_error(proc, "does not exist")


def test_bad_field_name(tmp_path):
    proc = run_cli(
        ["run", "--config", "tiny", "--set", "train.learning_rate=1"],
        tmp_path / ".lmops",
        timeout=120,
    )
    _assert_clean_error(proc, "unknown field 'train.learning_rate'")


def test_help_lists_commands(tmp_path):
    proc = run_cli(["--help"], tmp_path / ".lmops", timeout=120)
    assert proc.returncode == 0
    for cmd in ("run", "ui", "config"):
        assert cmd in proc.stdout
