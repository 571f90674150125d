"""Killing an ingest mid-run leaves the previously published state intact, and staging
folders are swept by their lease, never by a pid (a shared home spans hosts)."""

import json
import os
import signal
import subprocess
import sys
import time

from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.data.catalog import list_versions
from lmops.data.ingest import ingest
from lmops.data.lease import LEASE_TTL_S
from lmops.data.publish import StagedVersion, sweep_staging

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

    # The next run publishes normally. The dead run's folder keeps its fresh lease (on a
    # shared home it could be another host's live ingest) and goes once the lease expires.
    (dead,) = root.glob(".staging-*")
    again = ingest(
        [write_jsonl(tmp_path / "c.jsonl", [good_doc(i) for i in range(50, 80)])],
        DataConfig(),
        root,
    )
    assert again.created and list(root.glob(".staging-*")) == [dead]
    assert {m["version_id"] for m in list_versions(root)} == {first.version_id, again.version_id}
    time.sleep(1.5)
    assert sweep_staging(root, ttl_s=1.0) == [dead] and not dead.exists()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def staging_with_lease(root, name: str, renewed: float):
    folder = root / f".staging-{name}"
    folder.mkdir(parents=True)
    lease = {"host": "another-host", "pid": dead_pid(), "time": renewed}
    (folder / "lease.json").write_text(json.dumps(lease))
    return folder


def test_sweep_keeps_a_fresh_lease_whatever_its_pid_and_removes_an_expired_one(tmp_path):
    root = tmp_path / "ds"
    fresh = staging_with_lease(root, "fresh", time.time())
    stale = staging_with_lease(root, "stale", time.time() - LEASE_TTL_S - 60)
    no_lease = root / ".staging-no-lease"  # its writer died before the first lease
    no_lease.mkdir()
    os.utime(no_lease, (time.time() - LEASE_TTL_S - 60,) * 2)
    staged = StagedVersion(root)  # a new ingest sweeps on start
    assert fresh.exists() and not stale.exists() and not no_lease.exists()
    assert set(root.glob(".staging-*")) == {fresh, staged.path}
    assert (staged.path / "lease.json").exists()
    staged.discard()
    assert not staged.path.exists()


def test_heartbeat_keeps_a_long_ingest_lease_fresh(tmp_path):
    """With a 0.2 s heartbeat, sweeps with a 2 s TTL never take the folder of a live
    ingest, though the ingest runs several TTLs; it publishes, and no lease is left."""
    root = tmp_path / "ds"
    src = write_jsonl(tmp_path / "a.jsonl", [good_doc(i) for i in range(300)])
    # The decide stage waits 7 s first: the ingest outlives three TTLs on any machine.
    code = (
        "import time, lmops.data.lease as lease, lmops.data.ingest as ing; "
        "lease.HEARTBEAT_S = 0.2; decide = ing.stage_decide; "
        "ing.stage_decide = lambda *a: (time.sleep(7), decide(*a))[1]; " + CODE
    )
    proc = subprocess.Popen([sys.executable, "-c", code, src, str(root)], stderr=subprocess.PIPE)
    seen: dict[str, list[float]] = {}
    while proc.poll() is None:
        assert sweep_staging(root, ttl_s=2.0) == []
        for p in root.glob(".staging-*"):
            seen.setdefault(p.name, []).append(time.monotonic())
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    ((name, times),) = seen.items()
    assert times[-1] - times[0] > 3 * 2.0, f"the ingest held {name} only briefly"
    (version,) = root.glob("ds-*")
    assert not (version / "lease.json").exists() and not list(root.glob(".staging-*"))
