"""The server follows @production through a promotion and a rollback under continuous
load, with zero failed requests, against a real MLflow registry (SQLite)."""

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
from model_registry.evidence import evidence_for_version
from model_registry.promotion import approve, promote, rollback
from model_registry.register import log_and_register

KEY = "lmops-sk-swap"
NAME = "swap-lm"


def same(incumbent, eval_set):
    return dict(GATE_PASSING_METRICS)


def register(folder, tmp_path) -> str:
    tags = {
        **evidence_for_version(GATE_PASSING_METRICS, "es-a"),
        T.DATA_VALIDATION: "passed",
        T.REGISTERED_BY: "lmops-pipeline",
    }
    with mlflow.start_run():
        _, version, _ = log_and_register(folder, NAME, tags, "# card")
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
    settings = ServeSettings(model=f"models:/{NAME}@production", watch_interval_s=0.2)
    app = build_app(
        settings,
        keys=ApiKeys({"t": hash_key(KEY)}, {}),
        meter=UsageMeter(f"sqlite:///{tmp_path / 'usage.db'}"),
    )
    with live(app) as url:
        assert served_version(url) == v1
        stop, results = threading.Event(), []

        def load(stream: bool):
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

        clients = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(4)]
        for t in clients:
            t.start()
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
