"""Start-up cost of a small ingest: where the wall time of ``lmops ingest`` goes.

    .venv/bin/python benchmarks/ingest_startup.py            # 3 runs of each home kind
    .venv/bin/python benchmarks/ingest_startup.py --repo /old/checkout --repo .  # compare

Each run is ``lmops ingest FILE --config tiny`` on a new 50-record JSONL file, as a fresh
subprocess with the embedded services (the home's Prefect API, SQLite MLflow): the CLI's
own ``main()`` is called by a small bootstrap that first records timestamps at phase
boundaries (the same functions the console script calls; the hooks cost microseconds).
Three home kinds:

* ``first``: a new ``LMOPS_HOME`` and a new, empty ``LMOPS_CACHE`` per run, as on a
  machine that never ran lmops: the command starts the home's Prefect API, which migrates
  a new Prefect database and saves it as the template; the MLflow database is created.
* ``fresh``: a new ``LMOPS_HOME`` per run and one cache, primed by one uncounted run: the
  new home's Prefect database is a copy of the template (see ``lmops.prefect_api_server``).
* ``warm``: one home, primed by one uncounted run, whose Prefect API stays up between runs
  as it does for a user (see ``lmops.prefect_api``).

Each counted run ingests new records, so it is never a cache hit. Homes and caches live
in a temporary folder; their servers stop once it is deleted.

Target (the start-up issue): at most 5 s wall on 2 cores. The script prints PASS/FAIL for
each median and never asserts. The machine's load average is printed with each run: other
processes on the same cores stretch every figure. ``--repo`` measures another checkout of
lmops with this venv (``PYTHONPATH`` puts its code first); given twice, e.g. before and
after a change, the two checkouts' runs alternate, so both see the same load.
Results also go to ``benchmarks/out/ingest_startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGET_S = 5.0
RECORDS = 50
KINDS = ("first", "fresh", "warm")

# Runs inside the measured process before the CLI: wraps the phase boundaries and times
# the imports of the heavy libraries (cumulative, nested imports included).
BOOT = r"""
import atexit, functools, importlib.abc, importlib.util, json, os, sys, time, types
_out = open(os.environ["LMOPS_BENCH_TRACE"], "a")
def ev(name, t0, t1=None):
    _out.write(json.dumps({"name": name, "t0": t0, "t1": t1}) + "\n")
ev("boot", time.time())
atexit.register(lambda: (ev("atexit_last", time.time()), _out.flush()))
WATCH = set(os.environ["LMOPS_BENCH_IMPORTS"].split(","))
PATCH = {}

def timed(label, fn):
    clock, emit = time.time, ev
    def wrapper(*a, **k):
        t0 = clock()
        try:
            return fn(*a, **k)
        finally:
            emit(label.format(*a) if "{0}" in label else label, t0, clock())
    # Prefect resolves a flow's string annotations in its function's globals: keep them.
    glb = getattr(fn, "__globals__", wrapper.__globals__)
    w = types.FunctionType(wrapper.__code__, glb, fn.__name__, None, wrapper.__closure__)
    return functools.update_wrapper(w, fn)

def patch(module, attr, label):
    PATCH.setdefault(module, []).append((attr, label))

class Finder(importlib.abc.MetaPathFinder):
    busy = set()
    def find_spec(self, name, path=None, target=None):
        if (name not in WATCH and name not in PATCH) or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy.discard(name)
        if spec is None or spec.loader is None:
            return spec
        loader, run = spec.loader, spec.loader.exec_module
        def exec_module(module):
            t0 = time.time()
            run(module)
            if name in WATCH:
                ev("import " + name, t0, time.time())
            for attr, label in PATCH.get(name, ()):
                obj, _, member = attr.rpartition(".")
                owner = getattr(module, obj, None) if obj else module
                orig = getattr(owner, member, None)
                if orig is None:  # not in this version of the code
                    continue
                if type(orig).__name__ == "Task":  # time the body Prefect runs
                    orig.fn = timed(label, orig.fn)
                else:
                    setattr(owner, member, timed(label, orig))
        loader.exec_module = exec_module
        return spec

for spec in os.environ["LMOPS_BENCH_PATCH"].split(","):
    module, attr, label = spec.split(":", 2)
    patch(module, attr, label)
sys.meta_path.insert(0, Finder())
sys.argv = ["lmops", *json.loads(os.environ["LMOPS_BENCH_ARGV"])]
from pipelines.cli import main
try:
    main()
finally:
    ev("main_returned", time.time())
"""

IMPORTS = [
    "prefect",
    "prefect.server.api.server",
    "great_expectations",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "transformers",
    "datasketch",
    "profanity_check",
    "matplotlib.pyplot",
    "pandas",
    "lingua",
]
# module:attribute:label; attributes that are Prefect tasks get their body timed.
PATCHES = [
    "pipelines.cli.common:load_config:cli: config + standard",
    "pipelines.cli.common:prepare_home:cli: setup",
    "pipelines.ingest:ingest_flow.fn:flow body",  # before the next line replaces the flow
    "pipelines.ingest:ingest_flow:flow call",
    "pipelines.ingest:resolve_sources:task: resolve-sources",
    "pipelines.ingest:run_as_task:task: {0}",  # each stage of lmops.data.ingest
    "pipelines.ingest:log_to_mlflow:task: MLflow run",
    "pipelines.ingest:publish_ingest_artifacts:Prefect artifacts",
    "lmops.prefect_api:PrefectApi.wait:Prefect API: wait until it answers",
    "prefect.server.api.server:SubprocessASGIServer.start:Prefect API: start and wait",
    "prefect.server.api.server:SubprocessASGIServer.stop:Prefect API: stop",
    "lmops.data.validate:validate_dataset:GX: validate_dataset",
    "great_expectations.data_context.data_context.abstract_data_context:"
    "AbstractDataContext.build_data_docs:GX: Data Docs builds",
    "lmops.data.plots:write_plots:publish: plots",
    "lmops.tracking:configure_mlflow:MLflow: store + experiment",
]
# Spans inside others: printed as "of which".
NESTED = (
    "Prefect API: wait until it answers",
    "Prefect API: start and wait",
    "Prefect API: stop",
    "GX: validate_dataset",
    "GX: Data Docs builds",
    "publish: plots",
    "MLflow: store + experiment",
)


# --------------------------------------------------------------------------- inputs


def write_inputs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JSONL files of RECORDS new documents each (English and Chinese prose)."""
    from corpus_gen import _sentence_pools

    en, zh = _sentence_pools()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for f in range(count):
        path = folder / f"ingest50-{seed}-{f}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for n in range(RECORDS):
                is_zh = rng.random() < 0.3
                pool, sep = (zh, "") if is_zh else (en, " ")
                paras = [sep.join(rng.sample(pool, 4)) for _ in range(rng.randint(2, 8))]
                doc = {
                    "id": f"s{seed}-{f}-{n}",
                    "text": "\n".join(paras),
                    "source": "bench",
                    "license": "CC0-1.0",
                }
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
        files.append(path)
    return files


# --------------------------------------------------------------------------- one run


def run_once(repo: Path, home: Path, source: Path, trace: Path, cache: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PREFECT_API_URL")
    }
    env.update(
        LMOPS_HOME=str(home),
        LMOPS_CACHE=str(cache),
        PYTHONPATH=os.pathsep.join([str(repo / "platform"), str(repo)]),
        LMOPS_BENCH_TRACE=str(trace),
        LMOPS_BENCH_IMPORTS=",".join(IMPORTS),
        LMOPS_BENCH_PATCH=",".join(PATCHES),
        LMOPS_BENCH_ARGV=json.dumps(["ingest", str(source), "--config", "tiny"]),
    )
    trace.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", BOOT], cwd=repo, env=env, capture_output=True, text=True
    )
    t1 = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return {
        "wall": t1 - t0,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "load": load,
        "phases": phases(events, t0, t1),
        "imports": {
            e["name"][7:]: e["t1"] - e["t0"] for e in events if e["name"].startswith("import ")
        },
        "stage_seconds": _stage_seconds(home, proc.stdout),
    }


def _stage_seconds(home: Path, stdout: str) -> dict:
    vid = next((w for w in stdout.split() if w.startswith("ds-")), None)
    manifest = home / "datasets" / str(vid) / "manifest.json"
    return json.loads(manifest.read_text())["stage_seconds"] if manifest.exists() else {}


def phases(events: list[dict], t0: float, t1: float) -> dict[str, float]:
    """Seconds per phase, in the order they ran; nested spans are listed as "of which"."""
    spans: dict[str, float] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for e in events:
        name, end = e["name"], e["t1"] if e["t1"] is not None else e["t0"]
        if e["t1"] is not None and not name.startswith("import "):
            spans[name] = spans.get(name, 0.0) + end - e["t0"]
        first.setdefault(name, e["t0"])
        last[name] = end
    boot = first["boot"]
    out = {"interpreter start": boot - t0}
    out["CLI import"] = first.get("cli: config + standard", boot) - boot
    out["cli: config + standard"] = spans.get("cli: config + standard", 0.0)
    out["cli: setup"] = spans.get("cli: setup", 0.0)
    if "flow call" in first:
        out["flow module import + Prefect API wait"] = first["flow call"] - last["cli: setup"]
        out["flow engine start (before the flow body)"] = first["flow body"] - first["flow call"]
        body = sorted(
            (n for n in spans if n.startswith("task: ") or n == "Prefect artifacts"),
            key=first.__getitem__,
        )
        for name in body:
            out[name] = spans[name]
        out["flow body outside tasks"] = spans["flow body"] - sum(spans[n] for n in body)
        out["flow engine finish (after the flow body)"] = last["flow call"] - last["flow body"]
        out["output + exit handlers (server stop)"] = first["atexit_last"] - last["flow call"]
        out["interpreter teardown"] = t1 - first["atexit_last"]
    for name in NESTED:
        if name in spans:
            out["  of which " + name] = spans[name]
    return out


# --------------------------------------------------------------------------- report


def series(
    repos: list[Path], files: list[Path], work: Path, kind: str, runs: int
) -> dict[Path, list[dict]]:
    """``runs`` counted runs per checkout; checkouts alternate, each round in turn first."""
    fresh = kind != "warm"
    results: dict[Path, list[dict]] = {repo: [] for repo in repos}
    for i in range(runs + (0 if kind == "first" else 1)):
        order = repos if i % 2 == 0 else repos[::-1]
        for repo in order:
            tag = f"{repos.index(repo)}-{kind}"
            home = work / f"{tag}-home-{i}" if fresh else work / f"{tag}-home"
            # ``first``: a cache of its own per run, so no database template exists yet.
            cache = work / (f"{tag}-cache-{i}" if kind == "first" else f"{tag}-cache")
            r = run_once(repo, home, files[i], work / "trace.jsonl", cache)
            primed = kind != "first" and i == 0
            label = "prime (not counted)" if primed else f"run {len(results[repo]) + 1}"
            name = f" [{repo}]" if len(repos) > 1 else ""
            print(
                f"  {kind} {label}{name}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                f"load {r['load']:.2f}",
                flush=True,
            )
            if not primed:
                results[repo].append(r)
            if fresh:
                shutil.rmtree(home, ignore_errors=True)
            if kind == "first":
                shutil.rmtree(cache, ignore_errors=True)
    return results


def summary(name: str, results: list[dict]) -> dict:
    med = statistics.median(r["wall"] for r in results)
    cpu = statistics.median(r["cpu"] for r in results)
    loads = ", ".join(f"{r['load']:.1f}" for r in results)
    print(f"\n{name}: median {med:.2f} s wall over {len(results)} runs")
    print(f"  CPU (process tree) median {cpu:.2f} s; load average at each start: {loads}")
    keys = list(dict.fromkeys(k for r in results for k in r["phases"]))
    width = max(map(len, keys))
    print(f"  {'phase (median s)':<{width}}  {'':>6}")
    for k in keys:
        print(f"  {k:<{width}}  {statistics.median(r['phases'].get(k, 0.0) for r in results):6.2f}")
    stages = list(dict.fromkeys(k for r in results for k in r["stage_seconds"]))
    print(
        "  manifest stage_seconds (median s): "
        + ", ".join(
            f"{k} {statistics.median(r['stage_seconds'].get(k, 0.0) for r in results):.2f}"
            for k in stages
        )
    )
    print("  imports (cumulative, median s):")
    for k in IMPORTS:
        vals = [r["imports"][k] for r in results if k in r["imports"]]
        if vals:
            print(f"    {k:<{width - 2}}  {statistics.median(vals):6.2f}")
    verdict = "PASS" if med <= TARGET_S else "FAIL"
    print(f"  {verdict}: median {med:.2f} s against the {TARGET_S:.0f} s target")
    return {"median_wall": med, "verdict": verdict, "runs": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="counted runs per home kind (>= 3)")
    ap.add_argument(
        "--repo",
        type=Path,
        action="append",
        help="lmops checkout to measure (default: this one); repeat to compare checkouts, "
        "whose runs then alternate",
    )
    ap.add_argument("--only", choices=KINDS, help="measure one home kind")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ingest_startup.json")
    args = ap.parse_args()
    repos = [r.resolve() for r in args.repo or [HERE.parent]]
    print(f"lmops ingest start-up: {os.cpu_count()} CPUs, {RECORDS} records per run")
    report: dict = {"cpus": os.cpu_count(), "target_s": TARGET_S, "repos": {}}
    with tempfile.TemporaryDirectory(prefix="ingest-startup-") as tmp:
        work = Path(tmp)
        files = write_inputs(work / "inputs", len(KINDS) * (args.runs + 1))
        measured = {}
        for n, kind in enumerate(KINDS):
            if args.only in (None, kind):
                start = n * (args.runs + 1)
                measured[kind] = series(repos, files[start:], work, kind, args.runs)
    for repo in repos:
        report["repos"][str(repo)] = {
            kind: summary(f"{kind} home, {repo}", by_repo[repo])
            for kind, by_repo in measured.items()
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
