"""Admission control on a live server: the request budget, the queue, per-key
concurrency and tokens per minute, fair turns between keys, and a freed slot when a
streaming client goes away."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from serving_fixtures import live, open_stream

from lmops.serving.admission import Admission
from lmops.serving.api_errors import ApiError
from lmops.serving.app import build_app
from lmops.serving.fair_queue import FairQueue
from lmops.serving.keys import ApiKeys, hash_key
from lmops.serving.metering import UsageMeter
from lmops.serving.sampling import SamplingParams
from lmops.serving.settings import ServeSettings

KEYS = {"flood": "lmops-sk-test-flood", "calm": "lmops-sk-test-calm"}


def _server(model_dir, tmp_path, **limits):
    settings = ServeSettings(
        model=str(model_dir), max_tokens_limit=64, allow_unsigned=True, **limits
    )
    keys = ApiKeys({name: hash_key(raw) for name, raw in KEYS.items()}, {})
    meter = UsageMeter(f"sqlite:///{tmp_path / 'usage.db'}")
    return build_app(settings, keys=keys, meter=meter)


def _post(url, who, timeout=120, **body):
    body = {"model": "tiny-lm", "prompt": "the cat", "max_tokens": 8, **body}
    return httpx.post(
        url + "/v1/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEYS[who]}"},
        timeout=timeout,
    )


def _refused(url) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("lmops_refused_requests_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def _tokens(url, kind) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'lmops_tokens_total{{kind="{kind}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_request_over_the_budget_is_a_400_naming_it(model_dir, tmp_path):
    with live(_server(model_dir, tmp_path, request_token_budget=100)) as url:
        # 4 prompts x n=4 x 8 tokens = 128 > 100; a beam of 3 x 40 tokens = 120 > 100.
        for body in (
            {"prompt": ["a", "b", "c", "d"], "n": 4},
            {"max_tokens": 40, "use_beam_search": True, "n": 3, "temperature": 0},
        ):
            r = _post(url, "calm", **body)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "request_token_budget_exceeded" and "100" in err["message"]
        assert _post(url, "calm", prompt=["a", "b"], n=4).status_code == 200  # 64 tokens
        assert _refused(url)["request_budget"] == 2


def test_a_key_over_its_concurrency_gets_429_while_another_key_is_served(model_dir, tmp_path):
    # Two requests of the flood key are in flight (their tickets held, as the route
    # holds them while decoding): a third is refused, another key is served.
    app = _server(model_dir, tmp_path, key_max_concurrent=2)
    adm = app.state.serving.admission
    with live(app) as url:
        held = [adm.enter("flood", 10) for _ in range(2)]
        refused = _post(url, "flood", max_tokens=4)
        calm = _post(url, "calm", max_tokens=4)
        for t in held:
            adm.leave(t, 10)
        again = _post(url, "flood", max_tokens=4)
        counts = _refused(url)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_concurrency"
    assert int(refused.headers["retry-after"]) >= 1
    assert calm.status_code == 200 and again.status_code == 200
    assert counts["key_concurrency"] == 1


def test_tokens_per_minute_refuse_with_retry_after(model_dir, tmp_path):
    app = _server(model_dir, tmp_path, key_tokens_per_minute=120)
    with live(app) as url:
        # Each request reserves its prompt (a few tokens) plus 40 and uses all 40:
        # two fit in 120 tokens, the third does not until the bucket refills (2/s).
        first = [_post(url, "flood", max_tokens=40, ignore_eos=True) for _ in range(2)]
        over = _post(url, "flood", max_tokens=40, ignore_eos=True)
        calm = _post(url, "calm", max_tokens=40, ignore_eos=True)  # a bucket of its own
        refused = _refused(url)
    assert [r.status_code for r in first] == [200, 200]
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_tokens"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert calm.status_code == 200
    assert refused["key_tokens_per_minute"] == 1


def test_unused_budget_is_given_back():
    """A request that stops early costs only what it used: ten requests that reserve 45
    and use 5 leave 50 of a minute's 100, so one more fits and a second does not."""
    adm = Admission(10_000, 64, 4, 100, clock=lambda: 0.0)  # a frozen clock: no refill
    for _ in range(10):
        adm.leave(adm.enter("k", 45), 5)
    assert adm.inflight == 0
    adm.enter("k", 45)
    with pytest.raises(ApiError) as e:
        adm.enter("k", 45)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "24"


def test_a_full_server_answers_503_at_once(model_dir, tmp_path):
    app = _server(model_dir, tmp_path, max_queued_requests=2, key_max_concurrent=8)
    adm = app.state.serving.admission
    with live(app) as url:
        held = [adm.enter("flood", 10) for _ in range(2)]  # the server's two places
        t0 = time.perf_counter()
        busy = _post(url, "calm", max_tokens=4)
        took = time.perf_counter() - t0
        for t in held:
            adm.leave(t, 10)
        after = _post(url, "calm", max_tokens=4)
        counts = _refused(url)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "server_busy" and took < 5
    assert after.status_code == 200 and counts["queue_full"] == 1


def test_a_client_that_leaves_mid_stream_frees_its_slot_at_once(model_dir, tmp_path):
    app = _server(model_dir, tmp_path, key_max_concurrent=1)
    adm = app.state.serving.admission
    with live(app) as url:
        with open_stream(url, KEYS["flood"], 56) as s:
            next(s.iter_lines())  # the stream has started; then the client hangs up
        deadline = time.time() + 5
        while adm.inflight and time.time() < deadline:
            time.sleep(0.02)
        assert adm.inflight == 0
        # What it decoded before it left is metered and charged, not given back.
        assert _tokens(url, "completion") >= 1
        assert adm._buckets["flood"].tokens < adm.key_tokens_per_minute
        assert _post(url, "flood", max_tokens=2).status_code == 200


def test_the_engine_queue_takes_keys_in_turn():
    class R:
        def __init__(self, owner, i):
            self.owner, self.i = owner, i

    q = FairQueue()
    for i in range(6):
        q.put(R("flood", i))
    q.put(R("calm", 0))
    q.put(R("calm", 1))
    q.put(None)  # a wake-up comes after every waiting request
    got = [(r.owner, r.i) for r in (q.get() for _ in range(8))]
    assert got[:4] == [("flood", 0), ("calm", 0), ("flood", 1), ("calm", 1)]
    assert got[4:] == [("flood", i) for i in range(2, 6)]
    assert q.get() is None and q.empty()


def test_a_calm_key_joins_the_batch_ahead_of_a_floods_backlog(model_dir):
    """Engine level: 12 flood rows queued first, then one calm row; with 4 slots the calm
    row is decoded in the first batch that has room, not after the whole flood."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmops.serving.engine import TransformersEngine

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    engine = TransformersEngine(model, tok, max_batch_size=4)
    done: list[str] = []

    async def one(owner, n):
        p = SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
        async for _ in engine.stream(engine.encode("the cat"), p, owner=owner):
            pass
        done.append(owner)

    async def go():
        tasks = [asyncio.create_task(one("flood", 24)) for _ in range(12)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(one("calm", 2)))
        await asyncio.gather(*tasks)

    try:
        asyncio.run(go())
    finally:
        engine.close()
    assert done.index("calm") < 8, done


def test_a_burst_of_200_connections_gets_answers_not_errors(model_dir, tmp_path):
    """200 requests at once from one key: each is served or refused with 429 and
    Retry-After at once; none is a 5xx or a dropped connection, and another key is
    served meanwhile."""
    app = _server(model_dir, tmp_path, key_max_concurrent=8)

    async def burst(url):
        headers = {"Authorization": f"Bearer {KEYS['flood']}"}
        body = {"model": "tiny-lm", "prompt": "the cat", "max_tokens": 16}
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
            flood = [c.post("/v1/completions", json=body, headers=headers) for _ in range(200)]
            return await asyncio.gather(*flood, return_exceptions=True)

    with live(app) as url:
        answers = asyncio.run(burst(url))
        calm = _post(url, "calm", max_tokens=4)
        refused = _refused(url)
    codes = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
    assert set(codes) <= {200, 429}, sorted(set(map(str, codes)))
    assert codes.count(200) >= 8 and codes.count(429) >= 1
    assert all(a.headers["retry-after"] for a in answers if a.status_code == 429)
    assert refused["key_concurrency"] == codes.count(429)
    assert calm.status_code == 200 and app.state.serving.admission.inflight == 0


def test_a_prompt_near_the_body_limit_is_a_400_not_a_stall(model_dir, tmp_path):
    """A 900 kB prompt fits under the 1 MB body limit: it is tokenized and refused as
    longer than the context, in seconds; a 1 MB prompt is refused by size (413)."""
    with live(_server(model_dir, tmp_path)) as url:
        t0 = time.perf_counter()
        big = _post(url, "calm", prompt="the cat sat. " * 70_000)
        took = time.perf_counter() - t0
        huge = _post(url, "calm", prompt="x" * 1_000_000)
        after = _post(url, "calm", max_tokens=2)
    assert big.status_code == 400 and big.json()["error"]["code"] == "context_length_exceeded"
    assert took < 30, took
    assert huge.status_code == 413 and after.status_code == 200
