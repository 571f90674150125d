"""Keys reloaded live: a revoked key is refused and an added one accepted within the
watch interval, with no restart and no in-flight stream cut; a broken edit keeps the
keys in force; a key's own limits in the file replace the server's."""

from __future__ import annotations

import json
import time

import httpx
from serving_fixtures import live, open_stream

from conftest import assert_clean_error, run_cli
from lmops.serving.app import build_app
from lmops.serving.key_watch import KeyWatcher
from lmops.serving.keys import ApiKeys, KeyLimits, add_key, revoke_key
from lmops.serving.metering import UsageMeter
from lmops.serving.settings import ServeSettings

WATCH_S = 0.1


def _app(model_dir, tmp_path, path):
    settings = ServeSettings(
        model=str(model_dir), allow_unsigned=True, watch_interval_s=WATCH_S, max_tokens_limit=64
    )
    meter = UsageMeter(f"sqlite:///{tmp_path / 'usage.db'}")
    return build_app(settings, keys=ApiKeys.load(path, env={}), meter=meter)


def _post(url, key, **body):
    body = {"model": "tiny-lm", "prompt": "the cat", "max_tokens": 4, **body}
    return httpx.post(
        url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _until(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_revoke_and_add_take_effect_live_and_a_stream_in_flight_finishes(model_dir, tmp_path):
    path = tmp_path / "keys.toml"
    alice = add_key("alice", path)
    with live(_app(model_dir, tmp_path, path)) as url:
        with open_stream(url, alice, 40) as s:
            lines = s.iter_lines()
            first = next(lines)
            revoke_key("alice", path)
            # The server refuses alice's next request while her stream is still open.
            assert _until(lambda: _post(url, alice).status_code == 401)
            rest = [line for line in lines if line]
        assert first.startswith("data: ") and rest[-1] == "data: [DONE]"
        assert s.status_code == 200
        bob = add_key("bob", path)
        assert _until(lambda: _post(url, bob).status_code == 200)
        metrics = httpx.get(url + "/metrics").text
    assert 'lmops_key_reloads_total{result="loaded"} 2.0' in metrics


def test_a_broken_key_file_keeps_the_keys_in_force(tmp_path):
    path = tmp_path / "keys.toml"
    raw = add_key("alice", path)
    swapped: list[ApiKeys] = []
    watcher = KeyWatcher(ApiKeys.load(path, env={}), 3600, swapped.append)
    try:
        path.write_text("[keys.alice\n")  # a half-saved edit
        assert watcher.check() is False and swapped == []
        path.write_text(path.read_text().replace("[keys.alice\n", ""))
        add_key("bob", path)
        assert watcher.check() is True
        assert swapped[-1].verify(raw) is None and swapped[-1].verify("x") is None
        assert set(swapped[-1].hashes) == {"bob"}
    finally:
        watcher.close()


def test_a_keys_own_limits_replace_the_servers(model_dir, tmp_path):
    path = tmp_path / "keys.toml"
    tight = add_key("tight", path, KeyLimits(max_concurrent=1, tokens_per_minute=50))
    roomy = add_key("roomy", path)
    app = _app(model_dir, tmp_path, path)
    adm = app.state.serving.admission
    with live(app) as url:
        held = adm.enter("tight", 5)  # one request of tight's in flight: its limit
        refused = _post(url, tight)
        served = _post(url, roomy)
        adm.leave(held, 5)
        # 50 tokens a minute: a 4-token answer plus its prompt fits; a 60-token ask does not.
        assert _post(url, tight).status_code == 200
        over = _post(url, tight, max_tokens=60)
    assert (
        refused.status_code == 429 and "1 requests in flight" in refused.json()["error"]["message"]
    )
    assert served.status_code == 200
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_tokens"


def test_keys_list_shows_each_keys_limits(tmp_path):
    home, path, env = tmp_path / ".lmops", str(tmp_path / "keys.toml"), {"LMOPS_API_KEYS": ""}
    limits = ["--max-concurrent", "2", "--tokens-per-minute", "900"]
    proc = run_cli(["keys", "add", "ci", "--file", path, *limits], home, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    add_key("ops", tmp_path / "keys.toml")
    proc = run_cli(["keys", "list", "--file", path, "--json"], home, timeout=60, env=env)
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert (rows["ci"]["max_concurrent"], rows["ci"]["tokens_per_minute"]) == (2, 900)
    assert rows["ops"]["max_concurrent"] is None
    bad = ["keys", "add", "x", "--file", path, "--max-concurrent", "0"]
    assert_clean_error(run_cli(bad, home, timeout=60, env=env), "positive whole number")
