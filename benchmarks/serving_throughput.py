"""Serving speed: `lmops serve` against raw `model.generate` and `mlflow models serve`.

One random-init ``small`` preset model (a BPE trained on the bilingual sample corpus;
timing needs the shapes, not trained weights) is saved once as a Hugging Face folder and
once as an MLflow transformers model. Every request asks for greedy decoding of exactly
``--tokens`` new tokens (``ignore_eos`` for lmops, ``min_new_tokens`` for the others),
so all sides do the same work; greedy outputs are compared as well as times.

* single stream: one client, requests one after another, against raw in-process
  ``model.generate`` at batch size 1 on the same prompts (target: ratio >= 0.9);
* batching: 16 concurrent clients, aggregate tokens/s against the single stream
  (target: >= 5x), with p50 and p99 request latency;
* alternative: the same single stream and 16-client load against ``mlflow models
  serve`` (which does not batch), and the ratio of aggregates (target: >= 8x).

Each measurement is repeated ``--repeats`` times; ratios are per round, and the median
is reported. Servers run as separate processes with their default settings (lmops with
its output filter on, as shipped).

    .venv/bin/python benchmarks/serving_throughput.py            # about 5 min on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from registry_evidence import wait_http  # benchmarks/ is on sys.path

from lmops.config import ModelConfig, TokenizerConfig
from lmops.config.presets import PRESETS
from lmops.corpus.sample import BILINGUAL
from lmops.models.presets import build_hf_config, build_model
from lmops.tokenizer import train_tokenizer

BIN = Path(sys.executable).parent


def build(folder: Path):
    texts = [json.loads(x)["text"] for x in BILINGUAL.read_text("utf-8").splitlines()]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=4096, min_frequency=1))
    torch.manual_seed(0)
    cfg = build_hf_config(
        ModelConfig(preset="small", **PRESETS["small"]),
        len(tok),
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    model = build_model(cfg).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok, texts


def prompts(texts: list[str], n: int) -> list[str]:
    return [t[: 20 + (i * 7) % 40] for i, t in enumerate(texts[:n])]


def start(cmd: list[str], health: str, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_http(health, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


class Lmops:
    def __init__(self, url: str, tokens: int):
        self.url, self.tokens = url + "/v1/completions", tokens

    async def call(self, client: httpx.AsyncClient, prompt: str) -> tuple[str, int]:
        body = {
            "model": "model",
            "prompt": prompt,
            "max_tokens": self.tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        r = (await client.post(self.url, json=body)).raise_for_status().json()
        return r["choices"][0]["text"], r["usage"]["completion_tokens"]


class MlflowServe:
    def __init__(self, url: str, tokens: int):
        self.url, self.tokens = url + "/invocations", tokens

    async def call(self, client: httpx.AsyncClient, prompt: str) -> tuple[str, int]:
        params = {"max_new_tokens": self.tokens, "min_new_tokens": self.tokens, "do_sample": False}
        r = await client.post(self.url, json={"inputs": [prompt], "params": params})
        text = r.raise_for_status().json()["predictions"][0]
        text = text[len(prompt) :] if text.startswith(prompt) else text
        return text, self.tokens  # min_new_tokens = max_new_tokens: exactly this many


def load(server, work: list[str], clients: int) -> tuple[float, int, list[float], list[str]]:
    """``clients`` closed-loop clients share ``work``; (seconds, tokens, latencies, texts).

    The clients are asyncio tasks in one thread: on a 2-core machine, 16 client threads
    would take CPU from the server being measured.
    """
    latencies, texts, tokens = [], [""] * len(work), [0]
    todo = list(enumerate(work))

    async def client(c: httpx.AsyncClient):
        while todo:
            i, prompt = todo.pop(0)
            t = time.perf_counter()
            text, n = await server.call(c, prompt)
            latencies.append(time.perf_counter() - t)
            texts[i] = text
            tokens[0] += n

    async def run():
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(timeout=600, limits=limits) as c:
            await asyncio.gather(*(client(c) for _ in range(clients)))

    t = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t, tokens[0], latencies, texts


def raw_single(model, tok, work: list[str], tokens: int) -> tuple[float, list[str]]:
    texts, t = [], time.perf_counter()
    with torch.no_grad():
        for prompt in work:
            ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            texts.append(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return time.perf_counter() - t, texts


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--single", type=int, default=8, help="requests in a single-stream round")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-mlflow", action="store_true")
    args = ap.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="lmops-bench-serve-"))
    folder = work_dir / "model"
    model, tok, texts = build(folder)
    single_work = prompts(texts, args.single)
    many_work = prompts(texts * 4, args.clients * args.per_client)
    env = {**os.environ, "LMOPS_HOME": str(work_dir / ".lmops")}
    rounds: dict[str, list[float]] = {}
    lat: list[float] = []
    equal = True

    def note(key, value):
        rounds.setdefault(key, []).append(value)

    lmops = start(
        # A folder, so unsigned: this measures decoding, not the signature checks
        # (benchmarks/signing_speed.py measures those).
        [str(BIN / "lmops"), "serve", "--model", str(folder), "--no-auth", "--allow-unsigned"]
        + ["--port", "8971"],
        "http://127.0.0.1:8971/healthz",
        env,
    )
    try:
        srv = Lmops("http://127.0.0.1:8971", args.tokens)
        load(srv, single_work[:2], 1)  # warm-up
        raw_single(model, tok, single_work[:2], args.tokens)
        for _ in range(args.repeats):
            raw_s, raw_texts = raw_single(model, tok, single_work, args.tokens)
            s, n, _, got = load(srv, single_work, 1)
            equal &= got == raw_texts
            m, mn, lats, _ = load(srv, many_work, args.clients)
            lat += lats
            note("raw tok/s", args.single * args.tokens / raw_s)
            note("lmops single tok/s", n / s)
            note("lmops 16-client tok/s", mn / m)
            note("single / raw", (n / s) / (args.single * args.tokens / raw_s))
            note("16-client / single", (mn / m) / (n / s))
    finally:
        stop(lmops)
    if not args.skip_mlflow:
        import mlflow
        from mlflow.models import infer_signature

        mpath = work_dir / "mlflow-model"
        params = {"max_new_tokens": 32, "min_new_tokens": 32, "do_sample": False}
        mlflow.transformers.save_model(
            transformers_model={"model": model, "tokenizer": tok},
            path=str(mpath),
            task="text-generation",
            signature=infer_signature(["a"], ["b"], params=params),
            # Pinned, as lmops registers models: inferring them imports torchvision.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "transformers"],
        )
        ml = start(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(mpath),
                "--env-manager",
                "local",
                "-p",
                "8972",
                "-h",
                "127.0.0.1",
            ],
            "http://127.0.0.1:8972/ping",
            {**env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        )
        try:
            msrv = MlflowServe("http://127.0.0.1:8972", args.tokens)
            load(msrv, single_work[:2], 1)
            for i in range(args.repeats):
                s, n, _, got = load(msrv, single_work, 1)
                if i == 0:
                    equal &= got == raw_texts
                m, mn, _, _ = load(msrv, many_work, args.clients)
                note("mlflow single tok/s", n / s)
                note("mlflow 16-client tok/s", mn / m)
            ours, theirs = rounds["lmops 16-client tok/s"], rounds["mlflow 16-client tok/s"]
            rounds["lmops / mlflow at 16 clients"] = [
                a / b for a, b in zip(ours, theirs, strict=True)
            ]
        finally:
            stop(ml)
    print(
        f"small preset, {args.tokens} new tokens per request, greedy, {args.repeats} rounds; "
        f"greedy outputs equal across sides: {equal}"
    )
    for key, values in rounds.items():
        print(
            f"  {key:32s} median {statistics.median(values):9.2f}   rounds "
            + " ".join(f"{v:.2f}" for v in values)
        )
    print(
        f"  latency at {args.clients} clients: p50 {pct(lat, 0.5):.3f} s, "
        f"p99 {pct(lat, 0.99):.3f} s"
    )


if __name__ == "__main__":
    main()
