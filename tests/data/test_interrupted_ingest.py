"""Killing an ingest mid-run leaves the previously published state intact."""

import os
import signal
import subprocess
import sys
import time

from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.data.catalog import list_versions
from lmops.data.ingest import ingest

CODE = (
    "import sys; from pathlib import Path; from lmops.config import DataConfig;"
    "from lmops.data.ingest import ingest;"
    "ingest([sys.argv[1]], DataConfig(batch_rows=200), Path(sys.argv[2]))"
)


def test_kill_mid_ingest_leaves_published_versions_intact(tmp_path):
    root = tmp_path / "ds"
    first = ingest(
        [write_jsonl(tmp_path / "a.jsonl", [good_doc(i) for i in range(30)])], DataConfig(), root
    )
    before = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    big = write_jsonl(tmp_path / "big.jsonl", [good_doc(i) for i in range(100, 12_100)])
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE, big, str(root)], start_new_session=True, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(root.glob(".staging-*/annotated-*.parquet")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    assert list(root.glob(".staging-*")), "the ingest never reached the annotate stage"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    after = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert after == before == [first.version_id]
    assert [m["version_id"] for m in list_versions(root)] == [first.version_id]

    # The next run sweeps the dead run's staging folder and publishes normally.
    again = ingest(
        [write_jsonl(tmp_path / "c.jsonl", [good_doc(i) for i in range(50, 80)])],
        DataConfig(),
        root,
    )
    assert again.created and not list(root.glob(".staging-*"))
    assert {m["version_id"] for m in list_versions(root)} == {first.version_id, again.version_id}
