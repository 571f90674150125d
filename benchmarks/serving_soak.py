"""Serving soak: `lmops serve` under mixed, flooding and bad clients while @production moves.

Two tiny Llama versions (the debug size of tests/conftest.py ``make_tiny_lm``, a
512-token BPE, 40 training steps on the bilingual sample corpus) are registered in a
fresh SQLite MLflow store, signed, and v1 is promoted to @production through the real
staging and production gates with an approval. ``lmops serve --model
models:/soak-lm@production --watch-interval 1`` then runs as a separate process with
the server's default admission limits, and four API keys (made with ``add_key``):

* ``calm``: one client, a non-streaming 8-token completion every 0.2 s; its latency is
  the figure that matters;
* ``mixed``: 4 clients cycling through streaming and whole completions, ``n`` 2 to 4,
  beam search at temperature 0, prompt lists, and chat completions (streaming and not),
  each waiting 1 s when refused;
* ``bad``: one client sending a bad request every 0.5 s (invalid JSON, an unknown model
  or field, ``max_tokens`` over the limit, over the context, over the request budget,
  ``n`` over 8, beam search with streaming, a wrong key, no key), each expected to get
  one particular 4xx;
* ``flood``: ``--flood-clients`` (16) clients with a key limited to 4 requests in flight
  and 30,000 tokens a minute (its own limits in the key file), sending 32-token
  completions (every third streamed) without pause and retrying a refusal after 0.1 s,
  ignoring Retry-After.

The ``--minutes`` (10) of load are four phases: calm alone (15%, the latency
baseline), calm with the mixed and bad clients (15%: the baseline without the flood),
every client with the flood and alias moves (55%: ``promote`` of v2 to @production
through the gate, then ``rollback`` to v1, repeated, an even number of moves about 75 s
apart, at least two), and calm alone again (15%). After each move the benchmark polls
/healthz until the server follows. The report gives requests served and refused per key
and reason, 5xx, failed requests (a transport error or timeout, a stream without
``[DONE]`` or with an error finish, a 200 whose body or chunk does not parse, or one
whose ``system_fingerprint`` differs from the ``X-Lmops-Served-Version`` header), the
versions answering between moves and the requests in flight across each swap, the
server's refusal counters from /metrics, its RSS (with any child processes) at the start
of phase 2 (after the warm-up and phase 1) and at the end, the calm key's p50/p99
latency per phase, and CPU per phase.

It also writes ``benchmarks/out/serving_soak.json``, and exits 1 on any 5xx, any failed
request, a bad request answered with other than its expected status, or RSS growth
over 10%.

    .venv/bin/python benchmarks/serving_soak.py                  # --minutes of load + ~1 min
    .venv/bin/python benchmarks/serving_soak.py --minutes 1.5    # a short run while editing
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from registry_evidence import GOOD, same, wait_http  # benchmarks/ is on sys.path

BIN = Path(sys.executable).parent
NAME = "soak-lm"
PORT = 8973
URL = f"http://127.0.0.1:{PORT}"
OUT = Path(__file__).parent / "out" / "serving_soak.json"
FLOOD_LIMITS = {"max_concurrent": 4, "tokens_per_minute": 30_000}
MOVE_EVERY_S = 75  # the issue asks for alias moves every 60 to 90 s
CALM_EVERY_S = 0.2


def tiny_lm(texts: list[str], seed: int, steps: int = 40):
    """A debug-size Llama and its BPE, as tests/conftest.py ``make_tiny_lm`` makes one."""
    import torch

    from lmops.config import ModelConfig, TokenizerConfig
    from lmops.models.presets import build_hf_config, build_model
    from lmops.tokenizer import train_tokenizer

    torch.set_num_threads(1)  # tiny matrices: a second thread only spins
    torch.manual_seed(seed)
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=512, min_frequency=1))
    cfg = build_hf_config(
        ModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192, seq_len=256),
        len(tok),
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    model = build_model(cfg)
    data = torch.tensor([i for t in texts for i in tok(t)["input_ids"] + [tok.eos_token_id]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, max(1, len(data) - 65), (8,))
        batch = torch.stack([data[s : s + 64] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


def build_registry(work: Path, texts: list[str]) -> tuple[str, str]:
    """Two signed versions: v1 at @production, v2 at @staging, both approved."""
    import mlflow

    from model_registry import tags as T
    from model_registry.promotion import approve, promote
    from model_registry.register import log_and_register
    from model_registry.signed_evidence import Author, sign_version

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("soak")
    pipeline = Author("lmops-pipeline", False, "local, no authentication")
    lineage = {T.DATA_VALIDATION: "passed", T.DATASET_VERSION: "ds-soak"}
    versions = []
    for seed, corpus in ((1, texts), (5, texts[::-1])):
        model, tok = tiny_lm(corpus, seed)
        folder = work / f"lm-{seed}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        with mlflow.start_run():
            _, version, _ = log_and_register(folder, NAME, lineage, "# soak model")
        sign_version(NAME, version, GOOD, "es-soak", lineage, pipeline)
        # @production takes only the @staging holder: v1 goes up first, then v2 holds
        # @staging (approved), ready for every promotion of the soak.
        assert promote(NAME, version, "staging", rescore=same).moved
        approve(NAME, version, comment="soak benchmark")
        if not versions:
            assert promote(NAME, version, "production", rescore=same).moved
        versions.append(version)
    v1, v2 = versions
    return v1, v2


def move_alias(step: int, v1: str, v2: str) -> str:
    """Move @production: even steps promote v2 through the gate, odd ones roll back."""
    from model_registry.promotion import promote, rollback

    if step % 2 == 0:
        out = promote(NAME, v2, "production", rescore=same)
        if not out.moved:
            raise RuntimeError(f"the gate did not move @production to v{v2}: {out.decision}")
        return v2
    ev = rollback(NAME, "production")
    return ev.to_version or v1


def make_keys(path: Path) -> dict[str, str]:
    from lmops.serving.keys import KeyLimits, add_key

    keys = {name: add_key(name, path) for name in ("calm", "mixed", "bad")}
    keys["flood"] = add_key("flood", path, KeyLimits(**FLOOD_LIMITS))
    return keys


def server_rss(pid: int) -> int:
    """Resident bytes of the server and any children it started."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


@dataclass
class Result:
    key: str
    kind: str
    start: float
    end: float
    status: int | None  # None: no HTTP answer
    outcome: str  # "served", "STATUS code", or "failed: why"
    fingerprint: str = ""
    failed: bool = False
    phase: str = ""


@dataclass
class Soak:
    keys: dict[str, str]
    phase: str = "warm-up"
    results: list[Result] = field(default_factory=list)
    calm_latency: dict[str, list[float]] = field(default_factory=dict)
    bad_unexpected: list[str] = field(default_factory=list)
    no_retry_after: int = 0

    def note(self, r: Result) -> None:
        r.phase = self.phase
        self.results.append(r)
        if r.key == "calm" and r.outcome == "served":
            self.calm_latency.setdefault(self.phase, []).append(r.end - r.start)

    async def call(self, c: httpx.AsyncClient, key: str, kind: str, body, headers=None):
        """One request as ``key``; returns its Result (also noted)."""
        headers = headers if headers is not None else {"Authorization": f"Bearer {self.keys[key]}"}
        stream = isinstance(body, dict) and body.get("stream", False)
        chat = isinstance(body, dict) and "messages" in body
        path = "/v1/chat/completions" if chat else "/v1/completions"
        started = time.monotonic()
        kw = {"content": body} if isinstance(body, bytes) else {"json": body}
        if isinstance(body, bytes):
            headers = {**headers, "Content-Type": "application/json"}
        try:
            if stream:
                async with c.stream("POST", path, headers=headers, **kw) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        return self._refused(key, kind, started, resp)
                    lines = [line async for line in resp.aiter_lines()]
                    return self._streamed(key, kind, started, resp, lines, body)
            resp = await c.post(path, headers=headers, **kw)
            if resp.status_code != 200:
                return self._refused(key, kind, started, resp)
            return self._whole(key, kind, started, resp, body)
        except httpx.HTTPError as e:
            return self._fail(key, kind, started, None, f"{type(e).__name__}: {e}"[:200])

    def _fail(self, key, kind, started, status, why, fp="") -> Result:
        r = Result(key, kind, started, time.monotonic(), status, f"failed: {why}", fp, True)
        self.note(r)
        return r

    def _refused(self, key, kind, started, resp) -> Result:
        try:
            code = resp.json()["error"].get("code") or ""
        except (ValueError, KeyError, TypeError, AttributeError):
            code = "(no error body)"
        if resp.status_code in (429, 503) and "retry-after" not in resp.headers:
            self.no_retry_after += 1
        r = Result(
            key, kind, started, time.monotonic(), resp.status_code, f"{resp.status_code} {code}"
        )
        self.note(r)
        return r

    def _whole(self, key, kind, started, resp, body) -> Result:
        header = resp.headers.get("x-lmops-served-version", "")
        try:
            data = resp.json()
            choices = data["choices"]
            fp = data.get("system_fingerprint", "")
        except (ValueError, KeyError, TypeError):
            return self._fail(key, kind, started, 200, "200 with a body that does not parse")
        want = body.get("n", 1) * (
            len(body["prompt"]) if isinstance(body.get("prompt"), list) else 1
        )
        if len(choices) != want:
            return self._fail(key, kind, started, 200, f"{len(choices)} choices, not {want}", fp)
        if fp != header:
            return self._fail(key, kind, started, 200, f"body says {fp}, header {header}", fp)
        r = Result(key, kind, started, time.monotonic(), 200, "served", fp)
        self.note(r)
        return r

    def _streamed(self, key, kind, started, resp, lines, body) -> Result:
        header = resp.headers.get("x-lmops-served-version", "")
        done, finishes, fps = False, {}, set()
        for line in lines:
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                done = True
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                why = f"a chunk that does not parse: {payload[:80]!r}"
                return self._fail(key, kind, started, 200, why, header)
            fps.add(chunk.get("system_fingerprint", ""))
            for ch in chunk.get("choices", []):
                if ch.get("finish_reason"):
                    finishes[ch["index"]] = ch["finish_reason"]
        if not done:
            return self._fail(key, kind, started, 200, "stream ended without [DONE]", header)
        errors = [f for f in finishes.values() if str(f).startswith("error")]
        if errors:
            return self._fail(key, kind, started, 200, f"stream finished with {errors[0]}", header)
        if len(finishes) != body.get("n", 1):
            return self._fail(key, kind, started, 200, f"{len(finishes)} choices finished", header)
        if fps - {header}:
            return self._fail(key, kind, started, 200, f"chunks say {fps}, header {header}")
        r = Result(key, kind, started, time.monotonic(), 200, "served", header)
        self.note(r)
        return r


def prompts(texts: list[str]) -> list[str]:
    return [t[: 8 + (i * 5) % 16] for i, t in enumerate(texts[:40])]


async def calm(soak: Soak, c, ps: list[str], stop: asyncio.Event) -> None:
    """A request every CALM_EVERY_S (or at once, when the previous one took longer)."""
    i = 0
    while not stop.is_set():
        started = time.monotonic()
        body = {"model": NAME, "prompt": ps[i % len(ps)], "max_tokens": 8}
        body.update(temperature=0, ignore_eos=True)
        await soak.call(c, "calm", "completion", body)
        i += 1
        await asyncio.sleep(max(0.0, started + CALM_EVERY_S - time.monotonic()))


def mixed_bodies(ps: list[str], rng: random.Random):
    """The mixed key's cycle: streaming and not, n 2 to 4, beam search, chat."""
    while True:
        p = rng.choice(ps)
        n = rng.randint(2, 4)
        chat = [{"role": "user", "content": p}]
        yield "stream", {"model": NAME, "prompt": p, "max_tokens": 24, "stream": True}
        yield f"n={n}", {"model": NAME, "prompt": p, "max_tokens": 16, "n": n, "seed": 7}
        yield (
            f"beam n={n}",
            {
                "model": NAME,
                "prompt": p,
                "max_tokens": 12,
                "n": n,
                "use_beam_search": True,
                "temperature": 0,
            },
        )
        yield "chat", {"model": NAME, "messages": chat, "max_tokens": 16}
        yield (
            f"chat stream n={n}",
            {
                "model": NAME,
                "messages": chat,
                "max_tokens": 16,
                "n": n,
                "stream": True,
            },
        )
        yield "prompt list", {"model": NAME, "prompt": [p, p[::-1]], "max_tokens": 8}


async def mixed(soak: Soak, c, ps: list[str], stop: asyncio.Event, seed: int) -> None:
    for kind, body in mixed_bodies(ps, random.Random(seed)):
        if stop.is_set():
            return
        r = await soak.call(c, "mixed", kind, body)
        if r.status in (429, 503):  # a polite client waits as told
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.05)


def bad_requests(ps: list[str]) -> list[tuple[str, object, int, str, dict | None]]:
    """(kind, body, expected status, expected code, headers or None for the bad key)."""
    p = ps[0]
    ok = {"model": NAME, "prompt": p}
    beam_stream = {**ok, "n": 2, "use_beam_search": True, "stream": True}
    wrong = {"Authorization": "Bearer lmops-sk-not-a-key"}
    return [
        ("invalid_json", b'{"model": "soak-lm", "prompt": ', 400, "invalid_json", None),
        ("unknown_model", {**ok, "model": "nope"}, 404, "model_not_found", None),
        ("unknown_field", {**ok, "temprature": 1}, 400, "extra_forbidden", None),
        ("max_tokens_over_limit", {**ok, "max_tokens": 1000}, 400, "max_tokens_over_limit", None),
        ("over_context", {**ok, "max_tokens": 300}, 400, "context_length_exceeded", None),
        # 16 prompts x n 8 x 40 tokens = 5,120, over the default budget of 4,096
        ("over_budget", {**ok, "prompt": [p] * 16, "n": 8, "max_tokens": 40}, 400,
         "request_token_budget_exceeded", None),
        ("n_over_8", {**ok, "n": 9}, 400, "less_than_equal", None),
        ("beam_stream", beam_stream, 400, "value_error", None),
        ("wrong_key", ok, 401, "invalid_api_key", wrong),
        ("no_key", ok, 401, "no_key", {}),
    ]  # fmt: skip


async def bad(soak: Soak, c, ps: list[str], stop: asyncio.Event) -> None:
    cases, i = bad_requests(ps), 0
    while not stop.is_set():
        kind, body, status, code, headers = cases[i % len(cases)]
        r = await soak.call(c, "bad", f"bad:{kind}", body, headers)
        if r.outcome != f"{status} {code}" and not r.failed:
            soak.bad_unexpected.append(f"{kind}: {r.outcome}, expected {status} {code}")
        i += 1
        await asyncio.sleep(0.5)


async def flood(soak: Soak, c, ps: list[str], stop: asyncio.Event, i: int) -> None:
    j = 0
    while not stop.is_set():
        body = {"model": NAME, "prompt": ps[(i + j) % len(ps)], "max_tokens": 32}
        body.update(ignore_eos=True, stream=j % 3 == 2)
        r = await soak.call(c, "flood", "stream" if body["stream"] else "completion", body)
        j += 1
        if r.status != 200:
            await asyncio.sleep(0.1)


async def served_version(c: httpx.AsyncClient) -> str:
    return (await c.get("/healthz")).json()["version"]


@dataclass
class Move:
    step: int
    to: str
    at: float  # when the move returned (alias set)
    took_s: float  # promote or rollback, end to end
    followed_at: float | None = None


async def mover(stop: asyncio.Event, moves: list[Move], when: list[float], v1, v2, c) -> None:
    for step, at in enumerate(when):
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        if stop.is_set():
            return
        t = time.monotonic()
        to = await asyncio.to_thread(move_alias, step, v1, v2)
        m = Move(step, to, time.monotonic(), time.monotonic() - t)
        moves.append(m)
        while not stop.is_set() and time.monotonic() - m.at < 120:
            if await served_version(c) == to:
                m.followed_at = time.monotonic()
                break
            await asyncio.sleep(0.1)


async def sample_rss(pid: int, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append((time.monotonic(), server_rss(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


# (name, share of --minutes); the mixed and bad clients run in phases 2 and 3, the
# flood and the alias moves in phase 3 only, so 2 and 3 differ by the flood (and moves).
PHASES = (
    ("1 calm alone", 0.15),
    ("2 calm+mixed+bad", 0.15),
    ("3 all + flood, alias moves", 0.55),
    ("4 calm alone again", 0.15),
)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(server, this process) CPU seconds so far, user plus system."""
    import psutil

    server = psutil.Process(pid)
    ts = [server.cpu_times()] + [c.cpu_times() for c in server.children(recursive=True)]
    me = psutil.Process().cpu_times()
    return sum(t.user + t.system for t in ts), me.user + me.system


async def soak_run(args, soak: Soak, ps: list[str], pid: int, v1: str, v2: str) -> dict:
    total = args.minutes * 60
    lengths = [share * total for _, share in PHASES]
    n_moves = max(2, 2 * round(lengths[2] / (2 * MOVE_EVERY_S)))
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    rss: list[tuple[float, int]] = []
    moves: list[Move] = []
    marks: dict[str, float] = {}
    cpu: dict[str, tuple[float, float]] = {}

    def begin(k: int) -> float:
        soak.phase = PHASES[k][0] if k < len(PHASES) else "end"
        marks[soak.phase] = now = time.monotonic()
        cpu[soak.phase] = cpu_seconds(pid)
        return now

    async with httpx.AsyncClient(base_url=URL, timeout=60, limits=limits) as c:
        for _, body in list(zip(range(6), mixed_bodies(ps, random.Random(0)), strict=False)):
            await soak.call(c, "mixed", "warm-up", body[1])
        soak.results.clear()
        forever, others_stop, calm_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, rss, forever))
        begin(0)
        calm_task = asyncio.create_task(calm(soak, c, ps, calm_stop))
        await asyncio.sleep(lengths[0])
        begin(1)
        rss_start = server_rss(pid)
        others = [asyncio.create_task(mixed(soak, c, ps, others_stop, s)) for s in range(4)]
        others.append(asyncio.create_task(bad(soak, c, ps, others_stop)))
        await asyncio.sleep(lengths[1])
        t3 = begin(2)
        others += [
            asyncio.create_task(flood(soak, c, ps, others_stop, i))
            for i in range(args.flood_clients)
        ]
        spacing = lengths[2] / (n_moves + 1)
        when = [t3 + spacing * (k + 1) for k in range(n_moves)]
        move_task = asyncio.create_task(mover(others_stop, moves, when, v1, v2, c))
        await asyncio.sleep(lengths[2])
        await move_task  # the last move is followed before the clients stop
        others_stop.set()
        await asyncio.gather(*others)
        begin(3)
        await asyncio.sleep(lengths[3])
        calm_stop.set()
        await calm_task
        begin(4)
        rss_end = server_rss(pid)
        forever.set()
        await sampler
        metrics = (await c.get("/metrics")).text
        final_version = await served_version(c)
    names = [name for name, _ in PHASES] + ["end"]
    cpu_pct = {
        a: {
            "server_pct": round(100 * (cpu[b][0] - cpu[a][0]) / (marks[b] - marks[a]), 1),
            "clients_pct": round(100 * (cpu[b][1] - cpu[a][1]) / (marks[b] - marks[a]), 1),
        }
        for a, b in zip(names, names[1:], strict=False)
    }
    return {
        "marks": marks,
        "moves": moves,
        "rss": rss,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "cpu": cpu_pct,
        "metrics": metrics,
        "final_version": final_version,
    }


def prom_counts(text: str, name: str) -> dict[str, float]:
    out = {}
    for m in re.finditer(rf"^{name}\{{(.*?)\}} ([0-9.e+]+)$", text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def swap_report(results: list[Result], moves: list[Move], marks: dict, v1: str) -> list[dict]:
    """Per move: how long the server took, the versions that answered between it and
    the next, and the requests in flight at the moment the server followed."""
    rows = []
    bounds = [m.at for m in moves] + [marks[PHASES[3][0]]]
    for k, m in enumerate(moves):
        seg = [r for r in results if bounds[k] <= r.end < bounds[k + 1] and r.fingerprint]
        across = [r for r in results if r.start < m.followed_at < r.end] if m.followed_at else []
        old = f"{NAME}-v{moves[k - 1].to if k else v1}"  # the holder before this move
        rows.append(
            {
                "move": "promote" if m.step % 2 == 0 else "rollback",
                "to": f"{NAME}-v{m.to}",
                "gate_s": round(m.took_s, 2),
                "followed_after_s": round(m.followed_at - m.at, 2) if m.followed_at else None,
                "versions_answering": dict(Counter(r.fingerprint for r in seg)),
                "answers_from_old_after_follow": sum(
                    1 for r in seg if m.followed_at and r.start > m.followed_at and
                    r.fingerprint == old
                ),
                "in_flight_across_swap": len(across),
                "in_flight_across_swap_failed": sum(r.failed for r in across),
            }
        )  # fmt: skip
    return rows


def stats(xs: list[float]) -> dict:
    return {
        "n": len(xs),
        "p50_s": round(pct(xs, 0.5), 4),
        "p99_s": round(pct(xs, 0.99), 4),
        "mean_s": round(statistics.fmean(xs), 4) if xs else None,
    }


def report(args, soak: Soak, run: dict, v1: str, v2: str) -> dict:
    results = soak.results
    per_key: dict[str, Counter] = {}
    for r in results:
        per_key.setdefault(r.key, Counter())[r.outcome] += 1
    five = [r for r in results if r.status and r.status >= 500]
    failed = [r for r in results if r.failed]
    moves = run["moves"]
    swaps = swap_report(results, moves, run["marks"], v1)
    growth = (run["rss_end"] - run["rss_start"]) / run["rss_start"]
    latency = {phase: stats(xs) for phase, xs in soak.calm_latency.items()}
    served: dict[str, dict[str, list[float]]] = {}
    for r in results:
        if r.outcome == "served":
            served.setdefault(r.key, {}).setdefault(r.phase, []).append(r.end - r.start)
    served_latency = {
        key: {phase: stats(xs) for phase, xs in by_phase.items()}
        for key, by_phase in sorted(served.items())
    }
    requests_total = prom_counts(run["metrics"], "lmops_requests_total")
    server_5xx = sum(v for labels, v in requests_total.items() if 'status="5' in labels)
    out = {
        "minutes": args.minutes,
        "flood_clients": args.flood_clients,
        "flood_limits": FLOOD_LIMITS,
        "versions": [v1, v2],
        "requests": len(results),
        "per_key": {k: dict(v.most_common()) for k, v in sorted(per_key.items())},
        "5xx": len(five),
        "5xx_in_server_metrics": server_5xx,
        "failed": len(failed),
        "failed_examples": [f"{r.key} {r.kind}: {r.outcome}" for r in failed[:10]],
        "bad_unexpected": soak.bad_unexpected[:20],
        "bad_unexpected_count": len(soak.bad_unexpected),
        "refusals_without_retry_after": soak.no_retry_after,
        "server_refused_requests": prom_counts(run["metrics"], "lmops_refused_requests_total"),
        "server_swaps_total": float(
            (re.search(r"^lmops_model_swaps_total ([0-9.]+)$", run["metrics"], re.M) or [0, 0])[1]
        ),
        "final_version": run["final_version"],
        "swaps": swaps,
        "rss_start_mb": round(run["rss_start"] / 2**20, 1),
        "rss_end_mb": round(run["rss_end"] / 2**20, 1),
        "rss_peak_mb": round(max(b for _, b in run["rss"]) / 2**20, 1),
        "rss_growth_pct": round(100 * growth, 2),
        "rss_series_mb": [
            [round(t - run["marks"][PHASES[0][0]]), round(b / 2**20, 1)] for t, b in run["rss"]
        ],
        "calm_latency": latency,
        "served_latency_by_key": served_latency,
        "cpu_by_phase": run["cpu"],
    }
    out["ok"] = not (out["5xx"] or out["failed"] or out["bad_unexpected_count"] or growth > 0.10)
    return out


def print_report(o: dict) -> None:
    print(
        f"soak: {o['minutes']:g} min of load, {o['requests']} requests, "
        f"{o['flood_clients']} flood clients (key limits {o['flood_limits']})"
    )
    for key, outcomes in o["per_key"].items():
        print(f"  {key}:")
        for outcome, n in outcomes.items():
            print(f"    {n:7d}  {outcome}")
    print(f"  5xx: {o['5xx']} (server's /metrics: {o['5xx_in_server_metrics']:g})")
    print(f"  failed requests: {o['failed']}", *o["failed_examples"], sep="\n    ")
    print(f"  bad requests answered otherwise than expected: {o['bad_unexpected_count']}")
    for line in o["bad_unexpected"]:
        print(f"    {line}")
    print(f"  429/503 without Retry-After: {o['refusals_without_retry_after']}")
    print(f"  server's refusal counters: {o['server_refused_requests']}")
    print(f"  swaps (server counted {o['server_swaps_total']:g}; ends on {o['final_version']}):")
    for s in o["swaps"]:
        print(
            f"    {s['move']:8s} -> {s['to']}: gate {s['gate_s']} s, followed after "
            f"{s['followed_after_s']} s; answered until the next move: "
            f"{s['versions_answering']}; old version after follow: "
            f"{s['answers_from_old_after_follow']}; in flight across the swap "
            f"{s['in_flight_across_swap']}, failed {s['in_flight_across_swap_failed']}"
        )
    print(
        f"  server RSS: {o['rss_start_mb']} MB at phase 2 start, {o['rss_end_mb']} MB at the "
        f"end ({o['rss_growth_pct']:+.2f}%), peak {o['rss_peak_mb']} MB"
    )
    print("  calm key latency (served requests):")
    for phase, s in o["calm_latency"].items():
        print(f"    {phase:28s} n {s['n']:5d}  p50 {s['p50_s']:.3f} s  p99 {s['p99_s']:.3f} s")
    print("  served latency of the other keys:")
    for key, by_phase in o["served_latency_by_key"].items():
        if key != "calm":
            for phase, st in by_phase.items():
                print(
                    f"    {key:6s} {phase:28s} n {st['n']:5d}  p50 {st['p50_s']:.3f} s  "
                    f"p99 {st['p99_s']:.3f} s"
                )
    print("  CPU (100% = one core; 2 cores here):")
    for phase, c in o["cpu_by_phase"].items():
        print(f"    {phase:28s} server {c['server_pct']:5.1f}%  clients {c['clients_pct']:5.1f}%")
    print(f"  {'PASS' if o['ok'] else 'FAIL'}; JSON in {OUT}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="minutes of load, all phases")
    ap.add_argument("--flood-clients", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmops-bench-soak-"))
    os.environ.pop("LMOPS_PROMOTION_IDENTITY", None)  # embedded: anyone may promote
    os.environ.update(
        LMOPS_HOME=str(work / ".lmops"), MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}"
    )
    from lmops.corpus.sample import BILINGUAL
    from lmops.home import prepare_environment

    prepare_environment()
    texts = [json.loads(x)["text"] for x in BILINGUAL.read_text("utf-8").splitlines() if x]
    t = time.monotonic()
    v1, v2 = build_registry(work, texts)
    keys_file = work / "api_keys.toml"
    soak = Soak(make_keys(keys_file))
    print(f"registry with v{v1} (@production) and v{v2} in {time.monotonic() - t:.0f} s")
    log = work / "server.log"
    cmd = [str(BIN / "lmops"), "serve", "--model", f"models:/{NAME}@production"]
    cmd += ["--port", str(PORT), "--keys-file", str(keys_file), "--watch-interval", "1"]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=f, start_new_session=True)
    try:
        wait_http(URL + "/healthz", proc, log)
        run = asyncio.run(soak_run(args, soak, prompts(texts), proc.pid, v1, v2))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    out = report(args, soak, run, v1, v2)
    text = log.read_text("utf-8", errors="replace")
    out["server_log"] = str(log)
    out["server_log_errors"] = [x for x in text.splitlines() if " ERROR " in x][:20]
    print_report(out)
    if out["server_log_errors"]:
        print("  server log errors:", *out["server_log_errors"], sep="\n    ")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
