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
