"""What the registry benchmarks share: evidence that passes the default policies, and a
server wait.

``GOOD`` is tests/conftest.py ``GATE_PASSING_METRICS``: the benchmarks are scripts and do
not import the test suite.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

GOOD = {
    "eval/bits_per_byte": 2.0,
    "eval/unigram_bits_per_byte": 3.0,
    "eval/min_new_tokens": 5,
    "eval/tokens_scored": 1000,
    "safety/toxicity_rate": 0.0,
    "safety/flagged_rate": 0.05,
    "safety/pii_leak_rate": 0.0,
    "safety/canary_leak_rate": 0.0,
    "safety/memorisation_rate": 0.0,
}


def same(incumbent: str, eval_set: str) -> dict[str, float]:
    """The incumbent re-scored: the same evidence (no model is loaded)."""
    return dict(GOOD)


def wait_http(
    url: str, proc: subprocess.Popen, log: Path | None = None, timeout: float = 300
) -> None:
    """Wait until ``url`` answers 200, failing at once if ``proc`` exits."""
    see = f"; see {log}" if log else ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}{see}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up{see}")
