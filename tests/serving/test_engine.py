"""The batching engine decodes exactly as transformers' ``generate`` does, row by row."""

from __future__ import annotations

import asyncio

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmops.serving.engine import Delta, Done, TransformersEngine
from lmops.serving.sampling import SamplingParams

PROMPTS = ["the cat", "dogs run in the", "for help write to", "今天", "the"]


@pytest.fixture(scope="module")
def loaded(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture
def engine(loaded):
    eng = TransformersEngine(*loaded, batch_wait_ms=50)
    yield eng
    eng.close()


def complete(engine, prompt, params):
    async def go():
        parts, done, toks = [], None, []
        async for ev in engine.stream(engine.encode(prompt), params):
            if isinstance(ev, Delta):
                parts.append(ev.text)
                toks += ev.token_ids
            else:
                done = ev
        return "".join(parts), done, toks

    return go()


def run_all(engine, jobs):
    async def go():
        return await asyncio.gather(*(complete(engine, p, s) for p, s in jobs))

    return asyncio.run(go())


def reference(loaded, prompt, **kw):
    model, tok = loaded
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(ids, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **kw)
    new = out[0, ids.shape[1] :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id)]
    return new


def test_batched_greedy_rows_equal_generate_one_by_one(engine, loaded):
    # Different prompt lengths (left padding) and different max_tokens (rows leave the
    # batch early, their cache rows dropped) must not change any row's tokens.
    jobs = [(p, SamplingParams(max_tokens=6 + 3 * i, temperature=0)) for i, p in enumerate(PROMPTS)]
    results = run_all(engine, jobs)
    assert engine.batches == 1 and engine.batched_rows == len(PROMPTS)
    for (prompt, params), (_, done, toks) in zip(jobs, results, strict=True):
        want = reference(loaded, prompt, max_new_tokens=params.max_tokens, do_sample=False)
        assert toks == want, prompt
        assert done.completion_tokens == len(toks)
        assert done.finish_reason == ("length" if len(toks) == params.max_tokens else "stop")


def test_beam_search_equals_generate(engine, loaded):
    text, done, toks = asyncio.run(
        complete(engine, "the cat", SamplingParams(max_tokens=8, beam_width=3))
    )
    want = reference(
        loaded, "the cat", max_new_tokens=8, num_beams=3, do_sample=False, early_stopping=True
    )
    assert toks == want and done.completion_tokens == len(want)


def test_seeded_sampling_repeats_and_seeds_differ(engine):
    p = SamplingParams(max_tokens=24, temperature=1.5, top_p=0.95, top_k=50, seed=7)
    a, b = run_all(engine, [("今天", p), ("今天", p)])
    assert a[2] == b[2]
    other = run_all(engine, [("今天", SamplingParams(max_tokens=24, temperature=1.5, seed=8))])
    assert other[0][2] != a[2]


def test_top_k_one_is_greedy(engine, loaded):
    _, _, toks = asyncio.run(
        complete(
            engine, "dogs run", SamplingParams(max_tokens=10, temperature=0.9, top_k=1, seed=3)
        )
    )
    assert toks == reference(loaded, "dogs run", max_new_tokens=10, do_sample=False)


def test_stop_string_ends_the_completion(engine):
    text, done, _ = asyncio.run(
        complete(engine, "the cat", SamplingParams(max_tokens=30, temperature=0, stop=("mat",)))
    )
    assert done.finish_reason == "stop" and "mat" not in text and text.startswith(" sat on")


def test_close_finishes_accepted_requests(loaded):
    eng = TransformersEngine(*loaded, batch_wait_ms=0)

    async def go():
        params = SamplingParams(max_tokens=8)
        tasks = [asyncio.create_task(complete(eng, p, params)) for p in PROMPTS]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(eng.close)
        return await asyncio.gather(*tasks)

    results = asyncio.run(go())
    assert all(isinstance(d, Done) and d.completion_tokens > 0 for _, d, _ in results)


def test_requests_join_a_running_batch_and_decode_the_same(engine, loaded):
    # Continuous batching: B and C arrive while A decodes and join its batch (their KV
    # cache is merged into A's); every row must still equal generate on its own.
    long = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)

    async def go():
        first = asyncio.Event()

        async def watch():
            parts = []
            async for ev in engine.stream(engine.encode("the cat"), long):
                if isinstance(ev, Delta):
                    parts += ev.token_ids
                    first.set()
            return parts

        a = asyncio.create_task(watch())
        await first.wait()
        rest = await asyncio.gather(
            complete(engine, "for help write to", SamplingParams(max_tokens=7, temperature=0)),
            complete(engine, "今天", SamplingParams(max_tokens=12, temperature=0)),
        )
        return await a, rest

    a_toks, rest = asyncio.run(go())
    assert engine.batches == 1 and engine.batched_rows == 3  # B and C joined A's batch
    assert a_toks == reference(
        loaded, "the cat", max_new_tokens=40, min_new_tokens=40, do_sample=False
    )
    for prompt, n, (_, _, toks) in zip(["for help write to", "今天"], [7, 12], rest, strict=True):
        assert toks == reference(loaded, prompt, max_new_tokens=n, do_sample=False), prompt
