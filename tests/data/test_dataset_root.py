"""The dataset root on an fsspec file system: ``memory://``, ``file://`` and a bucket.

A remote root gets the same version, byte for byte, as a local one: same id, digest,
accepted documents and quarantine, dedup against the earlier versions stored there, and
the readers (catalog, training texts) read it back. Its manifest is uploaded last, so an
upload cut short leaves no visible version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.data.catalog import find_version, iter_texts, list_versions
from lmops.data.ingest import ingest
from lmops.data.store import read_parquet
from lmops.home import home

CFG = DataConfig(quality_overrides={"en": {"min_words": 20}, "zh": {"min_chars": 100}})


def _inputs(tmp_path):
    base = [good_doc(i) for i in range(40)]
    base.append(dict(base[3], id="copy3"))
    later = [good_doc(i) for i in range(200, 220)]
    later.append(dict(base[0], id="again", text=base[0]["text"] + " Once more."))
    return [write_jsonl(tmp_path / "base.jsonl", base)], [
        write_jsonl(tmp_path / "later.jsonl", later)
    ]


def _outcome(path) -> dict:
    m = json.loads((path / "manifest.json").read_text())
    quarantine = sorted(
        (r["source_file"].rsplit("/", 1)[-1], r["line"], r["reason"])
        for f in m["quarantine_files"]
        for r in read_parquet(path / f).to_pylist()
    )
    return {
        "id": m["version_id"],
        "digest": m["content_digest"],
        "texts": list(iter_texts(path)),
        "quarantine": quarantine,
    }


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """A fresh ``memory://`` root as ``LMOPS_DATASETS``, and a home of its own."""
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LMOPS_DATASETS", f"memory://lake-{uuid.uuid4().hex[:8]}/datasets")
    yield home().datasets
    home().datasets.fs.rm(home().datasets.path, recursive=True)


def test_a_memory_root_holds_the_versions_a_local_root_would(tmp_path, lake):
    first, later = _inputs(tmp_path)
    local = [ingest(first, CFG, tmp_path / "local"), ingest(later, CFG, tmp_path / "local")]
    remote = [ingest(first, CFG, lake), ingest(later, CFG, lake)]

    assert str(remote[0].path).startswith("memory://")
    for a, b in zip(local, remote, strict=True):
        assert _outcome(a.path) == _outcome(b.path)
    # The second input's copy of a first-version document went on dedup against it.
    assert any(r.startswith("dedup:near:") for *_, r in _outcome(remote[1].path)["quarantine"])
    assert sorted(m["version_id"] for m in list_versions(lake)) == sorted(
        r.version_id for r in remote
    )
    assert find_version(lake, remote[1].version_id[3:9])["version_id"] == remote[1].version_id
    assert ingest(first, CFG, lake).cached
    # Staged on the home's disk, uploaded, and the staging folder gone.
    assert not list((home().root / "staging").glob(".staging-*"))


def test_an_upload_cut_short_leaves_no_version(tmp_path, lake, monkeypatch):
    first, _ = _inputs(tmp_path)
    fs, put = lake.fs, type(lake.fs).put_file
    uploaded = []

    def failing_put(self, lpath, rpath, *args, **kwargs):
        if len(uploaded) == 2:  # the store fails mid-upload (a third-party failure)
            raise OSError("connection reset by the store")
        uploaded.append(rpath)
        return put(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(type(fs), "put_file", failing_put)
    with pytest.raises(OSError, match="connection reset"):
        ingest(first, CFG, lake)
    assert uploaded and not any(p.endswith("manifest.json") for p in uploaded)
    assert list_versions(lake) == []  # files without a manifest are no version
    assert not list((home().root / "staging").glob(".staging-*"))
    monkeypatch.setattr(type(fs), "put_file", put)
    rep = ingest(first, CFG, lake)
    assert rep.created and [m["version_id"] for m in list_versions(lake)] == [rep.version_id]


def test_a_file_url_root_is_a_local_folder_published_by_rename(tmp_path, monkeypatch):
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LMOPS_DATASETS", f"file://{tmp_path}/shared/datasets")
    assert home().datasets == tmp_path / "shared" / "datasets"
    first, _ = _inputs(tmp_path)
    rep = ingest(first, CFG, home().datasets)
    assert rep.path == tmp_path / "shared" / "datasets" / rep.version_id
    assert (rep.path / "manifest.json").exists()
    assert not (tmp_path / "home" / "staging").exists()


def test_a_bucket_without_credentials_is_one_line_naming_the_variables(tmp_path):
    """Real s3fs and botocore, no credentials anywhere: no network call is made."""
    src = write_jsonl(tmp_path / "base.jsonl", [good_doc(i) for i in range(5)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        LMOPS_HOME=str(tmp_path / "home"),
        LMOPS_DATASETS="s3://lmops-no-such-bucket/datasets",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    lmops = [str(Path(sys.executable).with_name("lmops"))]
    for args in (["ingest", str(src)], ["data", "list"]):
        out = subprocess.run(lmops + args, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr + out.stdout
        lines = [ln for ln in (out.stderr + out.stdout).splitlines() if "LMOPS_DATASETS" in ln]
        assert lines, out.stderr + out.stdout
        assert "no usable credentials" in lines[0] and "AWS_ACCESS_KEY_ID" in lines[0]
