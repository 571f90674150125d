"""`lmops serve` scaled out: the Ray Serve application on the real two-node Ray cluster
(`lmops services up`), two replicas, API keys from a key file, answering through Serve's
proxy with the same API as `lmops serve`."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_runs_the_same_app_with_two_replicas(model_dir, tmp_path):
    import ray
    from ray import serve

    from lmops.serving import ray_serve
    from lmops.serving.keys import add_key

    assert os.environ.get("RAY_ADDRESS"), "run `lmops services up` and source services.env"
    keys = tmp_path / "api_keys.toml"
    key = add_key("serve-test", keys)
    ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = ray_serve.app(
            {
                "model": str(model_dir),
                "allow_unsigned": "true",  # a folder: the signed path is tested below
                "api_keys_file": str(keys),
                "usage_db": f"sqlite:///{tmp_path / 'usage.db'}",
                "num_replicas": "2",
            }
        )
        serve.run(app, name="lmops-test", route_prefix="/", blocking=False)
        deadline = time.time() + 300
        while serve.status().applications["lmops-test"].status != "RUNNING":
            assert time.time() < deadline, serve.status()
            time.sleep(1)
        dep = serve.status().applications["lmops-test"].deployments[ray_serve.DEPLOYMENT]
        assert dep.replica_states.get("RUNNING") == 2
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(url + "/v1/models", headers=auth).json()["data"][0]["id"] == "tiny-lm"
        for _ in range(6):
            r = httpx.post(
                url + "/v1/completions",
                json={"model": "tiny-lm", "prompt": "the cat", "max_tokens": 6, "temperature": 0},
                headers=auth,
                timeout=120,
            )
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["text"].startswith(" sat on the")
        missing = httpx.post(url + "/v1/completions", json={"model": "tiny-lm", "prompt": "x"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "no_key"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_lmops_serve_follows_the_alias_on_the_tracking_server(model_dir, tmp_path):
    """The CLI as deployed: the MLflow server with authentication and proxied artifacts
    holds two signed versions; `lmops serve` follows @staging from one to the other
    through the gate, and refuses a move set directly with the client."""
    import signal
    import subprocess
    import uuid

    import mlflow
    from mlflow import MlflowClient

    from conftest import GATE_PASSING_METRICS, LMOPS, REPO, SERVING_TEXTS, make_tiny_lm
    from lmops.serving.keys import add_key
    from model_registry import keys as signing_keys
    from model_registry.promotion import promote
    from model_registry.register import log_and_register
    from model_registry.signed_evidence import sign_version

    name = f"serve-svc-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("lmops-serving-services")
    model, tok = make_tiny_lm(SERVING_TEXTS[::-1], steps=20, seed=5)
    other = tmp_path / "other-lm"
    model.save_pretrained(other)
    tok.save_pretrained(other)
    versions = []
    for folder in (model_dir, other):
        with mlflow.start_run():
            versions.append(log_and_register(folder, name, {}, "# card")[1])
        sign_version(
            name, versions[-1], GATE_PASSING_METRICS, "es-svc", {"lmops.data_validation": "passed"}
        )

    def same(incumbent, eval_set):
        return dict(GATE_PASSING_METRICS)

    assert promote(name, versions[0], "staging", rescore=same).moved
    keys = tmp_path / "api_keys.toml"
    key = add_key("svc", keys)
    port = free_port()
    env = {
        **os.environ,
        "LMOPS_HOME": str(tmp_path / ".lmops"),
        "LMOPS_TRUST_FILE": str(signing_keys.trust_file()),  # the keys that signed above
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [LMOPS, "serve", "--model", f"models:/{name}@staging", "--port", str(port),
         "--keys-file", str(keys), "--watch-interval", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    try:
        _wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, proc)
        body = {"model": name, "prompt": "the cat", "max_tokens": 5, "temperature": 0}
        first = httpx.post(url + "/v1/completions", json=body, headers=auth, timeout=60).json()
        assert first["system_fingerprint"] == f"{name}-v{versions[0]}"
        assert promote(name, versions[1], "staging", rescore=same).moved
        _wait_until(
            lambda: (
                httpx.get(url + "/v1/models", headers=auth).json()["data"][0]["version"]
                == versions[1]
            ),
            proc,
        )
        after = httpx.post(url + "/v1/completions", json=body, headers=auth, timeout=60).json()
        assert after["system_fingerprint"] == f"{name}-v{versions[1]}"
        # Back to v1 with the client, as the UI's alias pencil does: refused, v2 stays.
        MlflowClient().set_registered_model_alias(name, "staging", versions[0])
        _wait_until(lambda: "refused" in httpx.get(url + "/healthz").json(), proc)
        health = httpx.get(url + "/healthz").json()
        assert health["version"] == versions[1] and health["refused"]["version"] == versions[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err[-2000:]
    assert f"serving {name} v{versions[0]}" in err and f"now serving {name} v{versions[1]}" in err
    assert f"refused to swap to v{versions[0]}" in err


def _wait_until(check, proc, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("timed out")
