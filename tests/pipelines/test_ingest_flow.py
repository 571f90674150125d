"""The ingest flow: the library's stages as Prefect tasks, and an MLflow run for every
ingest, a FAILED one (with its evidence) when the dataset fails its standard."""

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import run_cli
from lmops.data.ingest import ingest
from lmops.data.standard import resolve
from lmops.errors import SourceError
from pipelines.run_config import load_run_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from corpus_factory import good_doc, write_jsonl  # noqa: E402
from short_corpus import SHORT_DOCS  # noqa: E402


def ingest_runs(home: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmops")
    return client, client.search_runs([exp.experiment_id], "tags.`lmops.kind` = 'ingest'")


def artifacts(client, run_id: str, path: str = "data") -> set[str]:
    out = set()
    for f in client.list_artifacts(run_id, path):
        out |= artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_failed_ingest_is_a_failed_mlflow_run_with_its_evidence(tmp_path):
    home = tmp_path / ".lmops"
    rows = [{"id": f"s{i}", "text": "tiny"} for i in range(9)] + [good_doc(i) for i in range(3)]
    proc = run_cli(["ingest", write_jsonl(tmp_path / "bad.jsonl", rows), "--config", "tiny"], home)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "reject_rate" in proc.stderr
    (rejected,) = (home / "datasets").glob(".rejected-ds-*")
    assert not list((home / "datasets").glob("ds-*"))

    client, runs = ingest_runs(home)
    (run,) = runs
    assert run.info.status == "FAILED"
    assert run.data.tags["lmops.dataset_version"] == rejected.name.removeprefix(".rejected-")
    assert run.data.tags["lmops.data_profile"] == "sample-corpus (extends web)"  # tiny's
    assert len(run.data.tags["lmops.standard_digest"]) == 16
    m = run.data.metrics
    assert (m["data/input"], m["data/accepted"], m["data/quarantined"]) == (12, 3, 9)
    assert m["data/reason/quality.too_short"] == 9 and m["data/reject_rate"] == 0.75
    # Per-stage timings and where they ran (a local pool of this machine's CPUs).
    assert {
        "ingest/read/seconds",
        "ingest/annotate/rows_per_s",
        "ingest/decide/bytes_per_s",
    } <= set(m)
    assert m["ingest/read/rows_per_s"] == pytest.approx(12 / m["ingest/read/seconds"])
    assert run.data.tags["lmops.ingest_executor"] == "local"
    assert int(run.data.tags["lmops.cluster_cpus"]) == os.cpu_count()
    logged = artifacts(client, run.info.run_id)
    assert {"data/manifest.json", "data/validation.json", "data/data_docs/index.html"} <= logged
    assert {f"data/plots/plot_{p}.png" for p in ("length_histogram", "reject_reasons")} <= logged
    gx = client.download_artifacts(run.info.run_id, "data/validation.json", str(tmp_path))
    assert "reject_rate" in Path(gx).read_text()


def test_flow_and_library_publish_the_same_version(tmp_path):
    home = tmp_path / ".lmops"
    rows = [good_doc(i) for i in range(40)] + ['{"bad', {"id": "t", "text": "too short"}]
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    proc = run_cli(["ingest", src, "--config", "tiny"], home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vid = next(w for w in proc.stdout.split() if w.startswith("ds-"))
    assert "input 42 = accepted 40 + quarantined 2 [OK]" in proc.stdout

    rep = ingest([src], load_run_config("tiny").data, tmp_path / "lib", data_docs=False)
    assert rep.version_id == vid and (rep.input, rep.accepted, rep.quarantined) == (42, 40, 2)
    assert rep.reasons == {"parse:malformed_json": 1, "quality:too_short": 1}
    assert list(rep.stage_seconds) == ["hash", "read", "annotate", "decide", "validate", "publish"]

    _, runs = ingest_runs(home)
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["lmops.dataset_version"] == vid


def test_profile_given_is_the_profile_used_and_a_config_override_is_printed(tmp_path):
    home = tmp_path / ".lmops"
    rows = [{"id": f"s{i}", "text": t} for i, t in enumerate(SHORT_DOCS)]
    src = write_jsonl(tmp_path / "short.jsonl", rows)
    # The default config (cpu) names its own profile file; --profile replaces it whole.
    proc = run_cli(["ingest", src, "--profile", "short"], home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"profile short (digest {resolve('v1', 'short').digest})" in proc.stdout
    assert "override" not in proc.stdout and "chinesewebtext:n_chars" not in proc.stdout
    # A run config that changes one of the profile's rules: applied, and each change listed.
    mine = tmp_path / "poems.toml"
    mine.write_text(
        'name = "poems"\n[data]\nprofile = "short"\n'
        "quality_overrides = { en = { min_words = 4 } }\n"
    )
    proc = run_cli(["ingest", src, "--config", str(mine)], home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "override: en.min_words 3 -> 4, from config poems" in proc.stdout
    assert "override: other.min_words 3 -> 4 (extends en), from config poems" in proc.stdout


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_io_stages_retry_transient_errors_and_cpu_stages_do_not(prefect_api):
    from prefect import flow

    from pipelines.ingest import run_as_task

    calls: Counter = Counter()

    def fails_first(stage: str, error: Exception):
        calls[stage] += 1
        if calls[stage] == 1:
            raise error
        return stage

    @flow
    def stages():
        assert run_as_task("read", fails_first, "read", ConnectionResetError("reset")) == "read"
        for name, error in (("annotate", OSError("disk")), ("decide", SourceError("bad"))):
            with pytest.raises(type(error)):
                run_as_task(name, fails_first, name, error)

    stages()
    assert calls == {"read": 2, "annotate": 1, "decide": 1}
