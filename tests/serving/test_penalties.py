"""frequency_penalty, presence_penalty and logit_bias: OpenAI's formula, batched, in the
engine as in ``generate``, and every bad value a 400."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
import torch
from serving_fixtures import live
from test_api import KEY, make_server
from test_engine import complete, reference, run_all
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from lmops.serving.engine import TransformersEngine
from lmops.serving.penalties import OpenAIPenalties, padded_ids
from lmops.serving.sampling import SamplingParams


def openai_reference(logits, generated, params):
    """OpenAI's definition, token by token: logits[j] -= c[j]*freq + (c[j]>0)*pres; += bias."""
    out = logits.clone()
    for i, (ids, p) in enumerate(zip(generated, params, strict=True)):
        for j in set(ids):
            c = ids.count(j)
            out[i, j] -= c * p.frequency_penalty + (c > 0) * p.presence_penalty
        for j, b in p.logit_bias:
            out[i, j] += b
    return out


def test_the_processor_is_openais_formula_row_by_row():
    torch.manual_seed(0)
    vocab = 50
    generated = [[], [3, 3, 7], [1, 2, 3, 4, 4, 4, 4], [9] * 12]
    params = [
        SamplingParams(frequency_penalty=0.5, presence_penalty=1.0),
        SamplingParams(frequency_penalty=2.0, logit_bias=((3, -5.0), (40, 100.0))),
        SamplingParams(presence_penalty=-2.0, logit_bias=((4, 1.5),)),
        SamplingParams(),  # a neighbour with nothing set is left alone
    ]
    logits = torch.randn(4, vocab)
    got = OpenAIPenalties(params, vocab)(padded_ids(generated, "cpu"), logits)
    assert torch.allclose(got, openai_reference(logits, generated, params))
    assert torch.equal(got[3], logits[3])
    # generate passes prompt and output together: only the output counts.
    prompt = torch.tensor([[3, 3, 3, 4]] * 4)
    joined = torch.cat([prompt, padded_ids(generated, "cpu")], dim=1)
    got = OpenAIPenalties(params, vocab, prompt_len=4)(joined, logits)
    assert torch.allclose(got, openai_reference(logits, generated, params))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        OpenAIPenalties([SamplingParams(logit_bias=((vocab, 1.0),))], vocab)


@pytest.fixture(scope="module")
def loaded(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def test_the_engine_applies_each_rows_own_values_as_generate_does(loaded):
    """One batch: penalised rows equal ``generate`` with the processor, row by row, and a
    row with nothing set equals plain greedy."""
    model, tok = loaded
    engine = TransformersEngine(model, tok, batch_wait_ms=50)
    try:
        plain = SamplingParams(max_tokens=16, temperature=0)
        first = reference(loaded, "the cat", max_new_tokens=1, do_sample=False)[0]
        both = {"frequency_penalty": 2.0, "presence_penalty": 2.0}
        jobs = [
            ("the cat", plain),
            ("the cat", SamplingParams(max_tokens=16, temperature=0, frequency_penalty=2.0)),
            ("the cat", SamplingParams(max_tokens=10, temperature=0, **both)),
            ("the cat", SamplingParams(max_tokens=4, temperature=0, logit_bias=((first, -100),))),
            (
                "dogs run in the",
                SamplingParams(
                    max_tokens=5, temperature=0, ignore_eos=True, logit_bias=((7, 100),)
                ),
            ),
        ]
        results = run_all(engine, jobs)
    finally:
        engine.close()
    assert engine.batches == 1
    for (prompt, p), (_, _, toks) in zip(jobs, results, strict=True):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        proc = OpenAIPenalties([p], engine.vocab, prompt_len=len(ids))
        kw = {"logits_processor": LogitsProcessorList([proc])} if p != plain else {}
        if p.ignore_eos:
            kw["min_new_tokens"] = p.max_tokens
        want = reference(loaded, prompt, max_new_tokens=p.max_tokens, do_sample=False, **kw)
        assert toks == want, p
    # The tiny model loops "the cat sat on the mat."; the penalties break the loop.
    assert results[1][2] != results[0][2]
    assert results[2][2] != results[0][2][:10]
    assert results[3][2][0] != first  # a -100 bias takes the greedy token out
    assert results[4][2] == [7] * 5  # a +100 bias makes it the only choice


def test_beam_search_takes_them_too(loaded):
    model, tok = loaded
    engine = TransformersEngine(model, tok)
    p = SamplingParams(max_tokens=6, beam_width=3, frequency_penalty=2.0, presence_penalty=1.0)
    try:
        _, _, toks = asyncio.run(complete(engine, "the cat", p))
    finally:
        engine.close()
    ids = tok("the cat", add_special_tokens=False)["input_ids"]
    proc = OpenAIPenalties([p] * 3, engine.vocab, prompt_len=len(ids))
    want = reference(
        loaded,
        "the cat",
        max_new_tokens=6,
        num_beams=3,
        do_sample=False,
        early_stopping=True,
        logits_processor=LogitsProcessorList([proc]),
    )
    assert toks == want


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    app, _ = make_server(model_dir, tmp_path_factory.mktemp("pen"))
    with live(app) as url:
        yield url


def test_the_api_takes_them_with_the_openai_client(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    r = client.completions.create(
        model="tiny-lm",
        prompt="the cat",
        max_tokens=6,
        temperature=0,
        frequency_penalty=1.0,
        presence_penalty=0.5,
        logit_bias={"7": 100},
        extra_body={"ignore_eos": True},
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 6
    c = client.chat.completions.create(
        model="tiny-lm",
        messages=[{"role": "user", "content": "the cat"}],
        max_tokens=4,
        presence_penalty=2.0,
    )
    assert c.choices[0].message.content is not None


BAD_BIAS = [
    ("10,000 entries", {str(i): 1.0 for i in range(10_000)}, "at most 300"),
    ("an id outside the vocabulary", {"999999": 5.0}, "outside this model's vocabulary"),
    ("a key that is no id", {"hello": 5.0}, "token ids"),
    ("a negative id", {"-3": 5.0}, "token ids"),
    ("a bias over 100", {"7": 500.0}, "from -100 to 100"),
]


@pytest.mark.parametrize("case", BAD_BIAS, ids=[b[0] for b in BAD_BIAS])
def test_a_bad_logit_bias_is_a_400_naming_it(server, case):
    _, bias, words = case
    r = httpx.post(
        server + "/v1/completions",
        json={"model": "tiny-lm", "prompt": "x", "max_tokens": 2, "logit_bias": bias},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert words in err["message"] and "Traceback" not in r.text
    assert err["param"] == "logit_bias" or "logit_bias" in err["message"]


@pytest.mark.parametrize("field", ["frequency_penalty", "presence_penalty"])
def test_a_penalty_outside_minus_two_to_two_is_a_400(server, field):
    r = httpx.post(
        server + "/v1/completions",
        json={"model": "tiny-lm", "prompt": "x", field: 2.5},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
