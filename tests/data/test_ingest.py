"""The spine's ingest: accounting, quarantine reasons, content-hashed versions."""

import json

import pyarrow.parquet as pq
import pytest

from lmops.config import DataConfig
from lmops.corpus.sample import bad_record_lines
from lmops.data.ingest import ingest, load_manifest
from lmops.errors import DataStandardError, SourceError

GOOD = [
    {
        "id": f"d{i}",
        "text": f"Document number {i} talks about data standards and models.",
        "lang": "en",
    }
    for i in range(30)
]


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_every_record_is_accepted_or_quarantined_with_a_reason(tmp_path):
    src = _write(tmp_path / "in.jsonl", GOOD + bad_record_lines())
    rep = ingest([str(src)], DataConfig(), tmp_path / "ds")
    assert rep.input == len(GOOD) + len(bad_record_lines())
    assert rep.balanced and rep.accepted == len(GOOD) + 1  # bad-dup-1 is a good document
    q = pq.read_table(next(rep.path.glob("quarantine-*.parquet"))).to_pylist()
    assert len(q) == rep.quarantined
    reasons = {r["reason"] for r in q}
    assert "schema:missing:text" in reasons and "dedup:exact" in reasons
    assert any(r.startswith("parse:malformed_json") for r in reasons)
    assert all(r["source_file"] == str(src) and r["line"] >= 1 for r in q)


def test_same_input_same_version_and_no_duplicate(tmp_path):
    src = _write(tmp_path / "in.jsonl", GOOD)
    a = ingest([str(src)], DataConfig(), tmp_path / "ds")
    b = ingest([str(src)], DataConfig(), tmp_path / "ds")
    assert a.version_id == b.version_id and a.created and not b.created
    assert [p.name for p in (tmp_path / "ds").iterdir()] == [a.version_id]


def test_changed_input_gives_new_version(tmp_path):
    a = ingest([str(_write(tmp_path / "a.jsonl", GOOD))], DataConfig(), tmp_path / "ds")
    b = ingest([str(_write(tmp_path / "b.jsonl", GOOD[:-1]))], DataConfig(), tmp_path / "ds")
    assert a.version_id != b.version_id


def test_manifest_records_counts_standard_and_source_hashes(tmp_path):
    src = _write(tmp_path / "in.jsonl", GOOD)
    m = load_manifest(ingest([str(src)], DataConfig(), tmp_path / "ds").path)
    assert m["standard_version"] and m["counts"]["accepted"] == len(GOOD)
    assert len(m["sources"][0]["sha256"]) == 64


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        ingest([str(tmp_path / "nope.jsonl")], DataConfig(), tmp_path / "ds")


def test_failing_dataset_standard_publishes_nothing(tmp_path):
    # Everything rejected: the GX dataset expectations fail and no version appears.
    src = _write(tmp_path / "in.jsonl", [{"id": "x", "text": "short"}] * 5)
    with pytest.raises(DataStandardError, match="nothing was published"):
        ingest([str(src)], DataConfig(), tmp_path / "ds")
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith("ds-")]


def test_text_files_split_into_paragraphs(tmp_path):
    (tmp_path / "a.txt").write_text(
        "First paragraph is long enough to keep.\n\nSecond paragraph is also long enough.\n"
    )
    rep = ingest([str(tmp_path / "a.txt")], DataConfig(), tmp_path / "ds")
    assert rep.accepted == 2
