"""Runs that cannot stay RUNNING: a process killed with SIGKILL leaves a RUNNING run with
a heartbeat, and the next lmops command on the home marks it KILLED, saying when, why
and (for training) how to resume it. Live owners, fresh heartbeats of other hosts and
runs lmops did not start are left alone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import mlflow
from mlflow import MlflowClient

from conftest import run_cli, run_python
from lmops import run_heartbeat as hb

# A process that starts runs as lmops does (each on the heartbeat), prints their ids and
# is killed with SIGKILL: no finally, no atexit, no end_run.
_KILLED = """
import json, os, signal, sys
from mlflow import MlflowClient
from lmops.home import prepare_environment
from lmops.run_heartbeat import keep_alive
from lmops.tracking import configure_mlflow

exp = configure_mlflow(prepare_environment(), "lmops")
c = MlflowClient()
train = c.create_run(exp, tags={"lmops.config": "tiny"}).info.run_id
c.log_param(train, "train.lr", "0.001")
ingest = c.create_run(exp, tags={"lmops.kind": "ingest"}).info.run_id
for r in (train, ingest):
    keep_alive(r)
print(json.dumps([train, ingest]), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _client(home):
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    return MlflowClient()


def test_a_killed_process_runs_are_marked_killed_by_the_next_command(tmp_path):
    home = tmp_path / ".lmops"
    proc = run_python(_KILLED, home)
    assert proc.returncode == -9, proc.stderr[-2000:]
    train, ingest = json.loads(proc.stdout.strip().splitlines()[-1])
    client = _client(home)
    assert client.get_run(train).info.status == "RUNNING"  # what a reviewer saw before

    listed = run_cli(["models", "list"], home, timeout=120)  # any command that tracks
    assert listed.returncode == 0, listed.stderr[-2000:]
    for rid in (train, ingest):
        run = client.get_run(rid)
        beat = json.loads(run.data.tags[hb.TAG])
        assert run.info.status == "KILLED"
        assert run.info.end_time == int(beat["time"] * 1000)  # ended at its last sign of life
        note = run.data.tags[hb.NOTE_TAG]  # the description in the MLflow UI
        assert f"process {socket.gethostname()}:{beat['pid']} no longer exists" in note
    assert (
        f"lmops train --resume {train} --config tiny"
        in client.get_run(train).data.tags[hb.NOTE_TAG]
    )
    assert "--resume" not in client.get_run(ingest).data.tags[hb.NOTE_TAG]


def test_only_runs_whose_owner_is_gone_are_reaped(tmp_path):
    client = _client(tmp_path)
    exp = client.create_experiment("reap", artifact_location=str(tmp_path / "art"))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = socket.gethostname()
        beats = {
            "other host, silent 20 min": {"host": "node-7", "pid": 1, "time": time.time() - 1200},
            "other host, fresh": {"host": "node-7", "pid": 1, "time": time.time() - 60},
            "live process here": {"host": here, "pid": sleeper.pid, "time": time.time() - 30},
        }
        ids = {}
        for what, beat in beats.items():
            ids[what] = client.create_run(exp, tags={hb.TAG: json.dumps(beat)}).info.run_id
        ids["not lmops's"] = client.create_run(exp).info.run_id
        unreadable = client.create_run(exp, tags={hb.TAG: "not json"}).info.run_id

        reaped = hb.reap_stale_runs()
    finally:
        sleeper.kill()
    assert reaped == [ids["other host, silent 20 min"]]
    note = client.get_run(reaped[0]).data.tags[hb.REAPED_TAG]
    assert "no heartbeat from node-7:1 for 20 min" in note
    for what in ("other host, fresh", "live process here", "not lmops's"):
        assert client.get_run(ids[what]).info.status == "RUNNING", what
    assert client.get_run(unreadable).info.status == "RUNNING"
    assert hb.reap_stale_runs() == []  # a second pass finds nothing more


def test_the_heartbeat_renews_and_leaves_ended_runs(tmp_path):
    client = _client(tmp_path)
    exp = client.create_experiment("beat", artifact_location=str(tmp_path / "art"))
    rid = client.create_run(exp).info.run_id
    hb.keep_alive(rid, heartbeat_s=0.1)
    first = json.loads(client.get_run(rid).data.tags[hb.TAG])["time"]
    deadline = time.time() + 10
    while json.loads(client.get_run(rid).data.tags[hb.TAG])["time"] == first:
        assert time.time() < deadline, "the heartbeat was not renewed"
        time.sleep(0.05)
    client.set_terminated(rid, "FINISHED")
    deadline = time.time() + 10
    while rid in hb._beating:
        assert time.time() < deadline, "an ended run stayed on the heartbeat"
        time.sleep(0.05)
