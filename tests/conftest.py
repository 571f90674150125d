"""Shared fixtures: an isolated LMOPS_HOME per test session and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LMOPS = str(Path(sys.executable).with_name("lmops"))


def run_cli(args: list[str], home: Path, timeout: int = 600, env: dict | None = None):
    """Run the installed ``lmops`` console script as a user would."""
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PREFECT_API_URL")
    }
    e.update({"LMOPS_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    e.update(env or {})
    return subprocess.run(
        [LMOPS, *args], cwd=home.parent, env=e, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real ``lmops run --config tiny`` shared by the end-to-end assertions."""
    home = tmp_path_factory.mktemp("e2e") / ".lmops"
    proc = run_cli(["run", "--config", "tiny"], home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home, proc
