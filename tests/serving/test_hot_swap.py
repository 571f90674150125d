"""The server follows @production through a promotion and a rollback under continuous
load, with zero failed requests, against a real MLflow registry (SQLite); an alias set
outside lmops is refused and the served version stays the same."""

from __future__ import annotations

import threading
import time

import httpx
import mlflow
import pytest
from serving_fixtures import live

from conftest import GATE_PASSING_METRICS, SERVING_TEXTS, make_tiny_lm
from lmops.serving.app import build_app
from lmops.serving.keys import ApiKeys, hash_key
from lmops.serving.metering import UsageMeter
from lmops.serving.settings import ServeSettings
from model_registry import tags as T
from model_registry.promotion import approve, promote, rollback
from model_registry.register import log_and_register
from model_registry.signed_evidence import Author, sign_version
from model_registry.verify import load_verified

KEY = "lmops-sk-swap"
NAME = "swap-lm"
PIPELINE = Author("lmops-pipeline", False, "local, no authentication")


def same(incumbent, eval_set):
    return dict(GATE_PASSING_METRICS)


def register(folder, tmp_path) -> str:
    """Log, register and sign, as the pipeline's register step does."""
    lineage = {T.DATA_VALIDATION: "passed", T.DATASET_VERSION: "ds-swap"}
    with mlflow.start_run():
        _, version, _ = log_and_register(folder, NAME, lineage, "# card")
    sign_version(NAME, version, GATE_PASSING_METRICS, "es-a", lineage, PIPELINE)
    return version


def to_production(version: str) -> None:
    assert promote(NAME, version, "staging", rescore=same).decision.passed
    approve(NAME, version, comment="hot-swap test")
    assert promote(NAME, version, "production", rescore=same).moved


@pytest.fixture
def registry(tmp_path, monkeypatch, model_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / ".lmops"))
    monkeypatch.delenv("LMOPS_PROMOTION_IDENTITY", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("swap")
    v1 = register(model_dir, tmp_path)
    model, tok = make_tiny_lm(SERVING_TEXTS[::-1], steps=20, seed=5)
    other = tmp_path / "other-lm"
    model.save_pretrained(other)
    tok.save_pretrained(other)
    v2 = register(other, tmp_path)
    to_production(v1)
    return v1, v2


def serve(tmp_path):
    return build_app(
        ServeSettings(model=f"models:/{NAME}@production", watch_interval_s=0.2),
        keys=ApiKeys({"t": hash_key(KEY)}, {}),
        meter=UsageMeter(f"sqlite:///{tmp_path / 'usage.db'}"),
        verifier=load_verified,
    )


def streaming_load(url, stop, results, clients=16):
    """``clients`` threads streaming completions until ``stop``; results as (ok, status, fp)."""

    def one(stream: bool):
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                body = {"model": NAME, "prompt": "the cat", "max_tokens": 6, "stream": stream}
                try:
                    r = c.post(
                        "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
                    )
                    fp = "" if stream else r.json().get("system_fingerprint", "")
                    ok = r.status_code == 200 and (not stream or "[DONE]" in r.text)
                    results.append((ok, r.status_code, fp))
                except httpx.HTTPError as e:
                    results.append((False, repr(e), ""))

    threads = [threading.Thread(target=one, args=(i % 2 == 1,)) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


def test_an_alias_set_outside_lmops_is_refused_under_load(registry, tmp_path):
    """The UI's alias pencil (``set_registered_model_alias``) moves @production to v2,
    which no gate passed: 16 streaming clients see no failure, v1 keeps serving, and the
    refusal shows in /healthz and /metrics; a real promotion of v2 is then followed."""
    v1, v2 = registry
    with live(serve(tmp_path)) as url:
        stop, results = threading.Event(), []
        threads = streaming_load(url, stop, results, clients=16)
        time.sleep(1)
        mlflow.MlflowClient().set_registered_model_alias(NAME, "production", v2)
        deadline = time.time() + 30
        while "refused" not in (health := httpx.get(url + "/healthz").json()):
            assert time.time() < deadline, health
            time.sleep(0.1)
        time.sleep(1.5)  # several more watch intervals: still refused, still serving v1
        assert served_version(url) == v1
        stop.set()
        for t in threads:
            t.join()
        metrics = httpx.get(url + "/metrics").text
    assert health["version"] == v1 and health["refused"]["version"] == v2
    assert "no signed promotion record" in health["refused"]["why"] or (
        "latest signed promotion record" in health["refused"]["why"]
    )
    failed = [r for r in results if not r[0]]
    assert not failed, failed[:5]
    assert len(results) > 16
    assert f'lmops_refused_swaps_total{{version="{v2}"}}' in metrics
    assert "lmops_model_swaps_total 0.0" in metrics


def served_version(url):
    return httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"][
        0
    ]["version"]


def wait_for(url, version, timeout=90):
    deadline = time.time() + timeout
    while served_version(url) != version:
        assert time.time() < deadline, f"still serving v{served_version(url)}, not v{version}"
        time.sleep(0.1)


def test_promotion_and_rollback_swap_with_no_failed_request(registry, tmp_path):
    v1, v2 = registry
    with live(serve(tmp_path)) as url:
        assert served_version(url) == v1
        stop, results = threading.Event(), []
        clients = streaming_load(url, stop, results, clients=4)
        time.sleep(1)
        to_production(v2)  # promote: gate, approval, alias move
        wait_for(url, v2)
        time.sleep(1)
        rollback(NAME, "production")
        wait_for(url, v1)
        time.sleep(1)
        stop.set()
        for t in clients:
            t.join()
        metrics = httpx.get(url + "/metrics").text
    failed = [r for r in results if not r[0]]
    assert not failed, failed[:5]
    served = {fp for _, _, fp in results}
    assert {f"{NAME}-v{v1}", f"{NAME}-v{v2}"} <= served
    assert len(results) > 40
    assert "lmops_model_swaps_total 2.0" in metrics


def test_a_replaced_weights_file_is_never_served(registry):
    """v2 passes its gates, then its weights are replaced in the artifact store before the
    server looks: the server checks the files it downloaded against the signature, closes
    what it loaded and keeps serving v1."""
    from pathlib import Path

    from lmops.evaluation.loading import logged_model_id
    from lmops.serving.model_source import ModelHolder

    v1, v2 = registry
    client = mlflow.MlflowClient()
    mv = client.get_model_version(NAME, v2)
    location = client.get_logged_model(logged_model_id(mv)).artifact_location
    [weights] = list(Path(location.removeprefix("file://")).rglob("*.safetensors"))
    # A watch interval no test reaches: the check below is the only one.
    settings = ServeSettings(model=f"models:/{NAME}@production", watch_interval_s=3600)
    holder = ModelHolder(settings, verifier=load_verified)
    try:
        to_production(v2)  # the gate checks the files: they are still the signed ones
        weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)  # then a quiet edit
        assert holder.check_alias() is False
        assert holder.current.version == v1 and holder.refused["version"] == v2
        assert "the model files differ from the signed ones" in holder.refused["why"]
        assert weights.name in holder.refused["why"]
    finally:
        holder.close()
