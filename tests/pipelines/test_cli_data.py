"""`lmops ingest` and `lmops data list|show|diff` as a user runs them."""

import json
import sys
from pathlib import Path

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from corpus_factory import good_doc, write_jsonl  # noqa: E402


def test_ingest_prints_version_and_accounting_then_caches(tmp_path):
    home = tmp_path / ".lmops"
    a = write_jsonl(tmp_path / "a.jsonl", [good_doc(i) for i in range(40)] + ['{"bad'])
    first = run_cli(["ingest", a, "--config", "tiny"], home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "input 41 = accepted 40 + quarantined 1 [OK]" in first.stdout
    assert "parse:malformed_json" in first.stdout
    vid = next(w for w in first.stdout.split() if w.startswith("ds-"))
    second = run_cli(["ingest", a, "--config", "tiny"], home)
    assert second.returncode == 0 and "cache hit" in second.stdout and vid in second.stdout

    b = write_jsonl(tmp_path / "b.jsonl", [good_doc(i) for i in range(45)])
    assert run_cli(["ingest", b, "--config", "tiny"], home).returncode == 0
    listing = run_cli(["data", "list"], home)
    assert listing.returncode == 0 and vid in listing.stdout and listing.stdout.count("ds-") == 2
    shown = run_cli(["data", "show", vid[:10]], home)
    assert json.loads(shown.stdout)["counts"]["quarantined"] == 1
    diff = run_cli(["data", "diff", vid, "latest"], home)
    assert diff.returncode == 0 and "accepted" in diff.stdout and "40" in diff.stdout
    assert "45" in diff.stdout


def test_ingest_failing_standard_is_one_line_error(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": f"s{i}", "text": "tiny"} for i in range(9)])
    proc = run_cli(["ingest", bad, "--config", "tiny"], tmp_path / ".lmops")
    assert proc.returncode == 3
    assert "failed the data standard" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / ".lmops" / "datasets").glob("ds-*"))
