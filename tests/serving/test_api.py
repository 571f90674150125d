"""The API through the official ``openai`` client against a live server, and every bad
request a client can send getting the right 4xx with an OpenAI-style error body."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serving_fixtures import live

from lmops.serving.app import build_app
from lmops.serving.keys import ApiKeys, hash_key
from lmops.serving.metering import UsageMeter
from lmops.serving.settings import ServeSettings

KEY = "lmops-sk-test-alice"


def make_server(model_dir, tmp_path, **overrides):
    settings = ServeSettings(
        model=str(model_dir), max_tokens_limit=64, allow_unsigned=True, **overrides
    )
    keys = ApiKeys({"alice": hash_key(KEY)}, {})
    meter = UsageMeter(f"sqlite:///{tmp_path / 'usage.db'}")
    return build_app(settings, keys=keys, meter=meter), meter


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    app, meter = make_server(model_dir, tmp_path_factory.mktemp("api"))
    with live(app) as url:
        yield url, meter


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


def test_models_lists_the_served_model(client, model_dir):
    (m,) = client.models.list().data
    assert m.id == model_dir.name and m.owned_by == "lmops"


def test_completion_greedy_and_usage(client):
    r = client.completions.create(model="tiny-lm", prompt="the cat", max_tokens=8, temperature=0)
    assert r.choices[0].text.startswith(" sat on the mat")
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 0


def test_chat_uses_the_tokenizers_template(client):
    r = client.chat.completions.create(
        model="tiny-lm", messages=[{"role": "user", "content": "the cat"}], max_tokens=5
    )
    assert r.choices[0].message.role == "assistant"
    # "user: the cat\nassistant:" is what the template renders, token for token.
    assert r.usage.prompt_tokens > 5 and r.usage.completion_tokens <= 5


@pytest.mark.parametrize(
    "strategy",
    [
        dict(temperature=0),
        dict(temperature=0, extra_body={"use_beam_search": True}),
        dict(temperature=1.0, extra_body={"top_k": 5}, seed=1),
        dict(temperature=1.0, top_p=0.8, seed=1),
        dict(temperature=0.7, seed=1),
    ],
    ids=["greedy", "beam", "top_k", "top_p", "temperature"],
)
def test_each_decoding_strategy(client, strategy):
    r = client.completions.create(model="tiny-lm", prompt="dogs run", max_tokens=6, **strategy)
    again = client.completions.create(model="tiny-lm", prompt="dogs run", max_tokens=6, **strategy)
    assert r.choices[0].text and r.choices[0].text == again.choices[0].text  # seeded: repeats


def test_n_beams_are_distinct_and_ranked(client):
    r = client.completions.create(
        model="tiny-lm",
        prompt="the",
        max_tokens=6,
        n=3,
        temperature=0,
        extra_body={"use_beam_search": True},
    )
    texts = [c.text for c in r.choices]
    assert len(texts) == 3 and len(set(texts)) == 3


def test_streaming_completion_and_chat(client):
    chunks = list(
        client.completions.create(
            model="tiny-lm",
            prompt="the cat",
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    whole = client.completions.create(
        model="tiny-lm", prompt="the cat", max_tokens=30, temperature=0
    )
    assert text == whole.choices[0].text
    assert len([c for c in chunks if c.choices]) > 2  # really incremental
    assert chunks[-1].usage.completion_tokens == 30
    chat = list(
        client.chat.completions.create(
            model="tiny-lm",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
        )
    )
    assert chat[0].choices[0].delta.role == "assistant"
    assert chat[-1].choices[0].finish_reason in ("length", "stop")


def test_a_chunk_is_one_line_to_any_line_splitter():
    """Text with U+0085, U+2028 or U+2029 (a tiny model emits them) stays in one line
    for clients that split the stream with str.splitlines, as httpx's iter_lines does."""
    from httpx._decoders import LineDecoder

    from lmops.serving.completion_stream import _sse

    payload = {"choices": [{"index": 0, "text": "a\x85b\u2028c\u2029d 诗"}]}
    lines = [x for x in LineDecoder().decode(_sse(payload)) if x]
    assert len(lines) == 1 and json.loads(lines[0].removeprefix("data: ")) == payload


def test_logprobs(client):
    r = client.completions.create(
        model="tiny-lm", prompt="the cat", max_tokens=4, temperature=0, logprobs=2
    )
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 4 and all(v <= 0 for v in lp.token_logprobs)
    assert all(len(t) == 2 for t in lp.top_logprobs)


def test_pii_in_an_output_is_redacted_and_counted(server, client):
    r = client.completions.create(
        model="tiny-lm", prompt="for help write to", max_tokens=12, temperature=0
    )
    text = r.choices[0].text
    assert "alice.smith@example.com" not in text and "<EMAIL>" in text
    metrics = httpx.get(server[0] + "/metrics").text
    assert 'lmops_filtered_responses_total{action="redact",blocked="false"}' in metrics


def test_block_action_withholds_the_completion(model_dir, tmp_path):
    app, meter = make_server(model_dir, tmp_path, safety_action="block")
    with live(app) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        r = c.completions.create(
            model="tiny-lm", prompt="for help write to", max_tokens=12, temperature=0
        )
        assert r.choices[0].finish_reason == "content_filter" and r.choices[0].text == ""
        s = list(
            c.completions.create(
                model="tiny-lm",
                prompt="for help write to",
                max_tokens=40,
                temperature=0,
                stream=True,
            )
        )
        assert s[-1].choices[0].finish_reason == "content_filter"
        assert "alice.smith" not in "".join(x.choices[0].text for x in s)
    assert meter.summary()[0]["requests"] == 2


def test_tokens_are_metered_per_key(server, client):
    before = {r["key"]: r for r in server[1].summary()}.get("alice", {"completion_tokens": 0})
    client.completions.create(model="tiny-lm", prompt="the", max_tokens=7, temperature=0)
    after = {r["key"]: r for r in server[1].summary()}["alice"]
    assert after["completion_tokens"] - before["completion_tokens"] == 7


BAD = [
    ("invalid JSON", b'{"model": "tiny-lm", "prompt": ', KEY, 400, "invalid_json"),
    (
        "negative max_tokens",
        {"model": "tiny-lm", "prompt": "x", "max_tokens": -1},
        KEY,
        400,
        "greater_than_equal",
    ),
    (
        "temperature < 0",
        {"model": "tiny-lm", "prompt": "x", "temperature": -0.5},
        KEY,
        400,
        "greater_than_equal",
    ),
    ("unknown model", {"model": "gpt-4", "prompt": "x"}, KEY, 404, "model_not_found"),
    *[
        (f"{field} {value}", {"model": "tiny-lm", "prompt": "x", field: value}, KEY, 400, code)
        for field, value, code in [
            ("max_tokens", 10**12, "max_tokens_over_limit"),
            ("n", -3, "greater_than_equal"),
            ("n", 10**6, "less_than_equal"),
            ("best_of", -2, "value_error"),
            ("best_of", 10**6, "value_error"),
            ("top_k", -7, "greater_than_equal"),
            ("top_k", 10**12, "less_than_equal"),
        ]
    ],
    (
        "prompt over the context",
        {"model": "tiny-lm", "prompt": "cat " * 80, "max_tokens": 8},
        KEY,
        400,
        "context_length_exceeded",
    ),
    (
        "max_tokens over the limit",
        {"model": "tiny-lm", "prompt": "x", "max_tokens": 65},
        KEY,
        400,
        "max_tokens_over_limit",
    ),
    (
        "misspelt field",
        {"model": "tiny-lm", "prompt": "x", "temprature": 1},
        KEY,
        400,
        "extra_forbidden",
    ),
    ("missing key", {"model": "tiny-lm", "prompt": "x"}, None, 401, "no_key"),
    ("wrong key", {"model": "tiny-lm", "prompt": "x"}, "lmops-sk-wrong", 401, "invalid_api_key"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_openai_style_4xx(server, case):
    _, body, key, status, code = case
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, bytes):
        r = httpx.post(
            server[0] + "/v1/completions",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
    else:
        r = httpx.post(server[0] + "/v1/completions", json=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "Traceback" not in r.text


def test_the_openai_client_raises_typed_errors(server):
    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    good = openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        good.completions.create(model="other", prompt="x")
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        good.completions.create(model="tiny-lm", prompt="cat " * 80)


def test_oversized_body_is_413(server):
    r = httpx.post(
        server[0] + "/v1/completions",
        content=b"x" * 1_100_000,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # Without a Content-Length (chunked), the limit counts the bytes as they arrive.
    chunks = (b"x" * 100_000 for _ in range(11))
    r = httpx.post(
        server[0] + "/v1/completions",
        content=chunks,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_health_metrics_and_openapi_are_published(server):
    assert httpx.get(server[0] + "/healthz").json()["status"] == "ok"
    spec = httpx.get(server[0] + "/openapi.json").json()
    assert {"/v1/completions", "/v1/chat/completions", "/v1/models"} <= set(spec["paths"])
    assert "lmops_requests_total" in httpx.get(server[0] + "/metrics").text


def test_docs_and_spec_need_no_key_but_the_api_does(server):
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(server[0] + path).status_code == 200
    assert httpx.get(server[0] + "/v1/models").status_code == 401


def test_a_wrong_method_is_405_with_allow(server):
    r = httpx.get(server[0] + "/v1/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["message"]


def test_every_answer_names_the_version_in_body_and_header(server, model_dir):
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "tiny-lm", "prompt": "the cat", "max_tokens": 3}
    r = httpx.post(server[0] + "/v1/completions", json=body, headers=auth, timeout=60)
    fingerprint = r.json()["system_fingerprint"]
    assert fingerprint.startswith(model_dir.name + "-v")
    assert r.headers["x-lmops-served-version"] == fingerprint
    body |= {"stream": True}
    with httpx.stream(
        "POST", server[0] + "/v1/completions", json=body, headers=auth, timeout=60
    ) as s:
        assert s.headers["x-lmops-served-version"] == fingerprint
        chunks = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    assert chunks and all(c["system_fingerprint"] == fingerprint for c in chunks)


def test_int8_dynamic_quantisation_serves(model_dir, tmp_path):
    # The quantised model is a different model: its greedy text may differ slightly,
    # but it must serve, and its Linear layers must really be int8.
    app, _ = make_server(model_dir, tmp_path, quantize="int8", device="cpu")
    with live(app) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        r = c.completions.create(model="tiny-lm", prompt="the cat", max_tokens=6, temperature=0)
        assert r.usage.completion_tokens == 6 and r.choices[0].text
        assert "lmops_served_version" in httpx.get(url + "/metrics").text
    import torch

    from lmops.serving.model_source import load
    from lmops.serving.settings import ServeSettings as S

    settings = S(model=str(model_dir), quantize="int8", device="cpu", allow_unsigned=True)
    served = load(str(model_dir), settings)
    try:
        kinds = {type(m).__module__ for m in served.engine.model.modules()}
        assert any("quantized" in k for k in kinds), kinds
        assert not any(type(m) is torch.nn.Linear for m in served.engine.model.modules())
    finally:
        served.engine.close()
