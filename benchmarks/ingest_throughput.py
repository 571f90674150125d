"""Ingest throughput: lmops ``ingest()`` and lmops' rules alone against datatrove.

    .venv/bin/python benchmarks/ingest_throughput.py --quick  # smoke run, ~3 min
    .venv/bin/python benchmarks/ingest_throughput.py          # 20 + 20 + 50 MB, ~27 min
    .venv/bin/python benchmarks/ingest_throughput.py --generated-mb 0 --real-mb 50  # target only

Minutes are for 2 shared cores, 3 runs per side.

Needs datatrove and spaCy (its word tokenizer), which ``make install`` brings. Three
corpora, each split into 8 JSONL shards (datatrove parallelises over files, so one big
file would leave its second worker idle):

* ``generated``: recombined sentences, English and Chinese, 8% planted duplicates
  (``corpus_gen.py``, as before);
* ``docs-<real-mb>``: documentation installed on this machine, nothing downloaded
  (``lmops.corpus.installed_docs``: Markdown, reST, HTML, markup left in);
* ``docs-<mb>``: the same at the target size; if the machine holds less, records are
  repeated with new ids and the output says how many.

Four sides, each run as a fresh subprocess, timed from start to exit (imports
included), ``--repeats`` times, the order reversed every other run:

* ``lmops``: ``ingest()`` with the ``web`` profile, quality rules on, ``workers``. It
  does work datatrove does not do here; the output lists it.
* ``datatrove``: ``JsonlReader`` -> ``GopherRepetitionFilter`` -> ``GopherQualityFilter``
  -> ``C4QualityFilter`` -> ``FineWebQualityFilter`` -> ``JsonlWriter`` (datatrove
  defaults, as FineWeb ran them, except C4's end-punctuation line rule, which is off as
  in the ``web`` profile and FineWeb's own run; each filter with an exclusion writer, as
  lmops writes its quarantine), ``LocalPipelineExecutor`` with the same ``workers``.
* ``lmops-rules`` (``rules_only_side.py``): datatrove's work done with lmops' code.
  Every document is taken as English, as datatrove takes it; the ``web`` profile's
  English rules (C4 lines, Gopher, FineWeb) run through lmops' own functions, the kept
  and the excluded documents are written as datatrove writes them (gzipped JSONL, one
  folder per rule family), ``workers`` processes over the shards.
* ``datatrove-ws``: the ``datatrove`` side with lmops' word definition (whitespace
  tokens, ``lmops.data.standard.datatrove_words``) and lmops' FineWeb
  duplicated-line-character limit (0.1): the same rules, words and figures as
  ``lmops-rules``, so the two should decide alike.

Two ratios, each the median over runs of one side's wall / the other's in the same run:
the full-pipeline ratio, ``datatrove`` / ``lmops`` (unequal work; the TARGET line judges
it, as the issue set it), and the equal-work ratio, ``datatrove-ws`` / ``lmops-rules``.
``lmops`` is joined on id with ``datatrove``, ``lmops-rules`` with ``datatrove-ws``; the
kept counts of all four are listed. Everything is written to
``<out>/ingest_throughput.json`` as well.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SHARDS = 8
TARGET_RATIO, TARGET_MB, TARGET_WORKERS = 3.0, 50, 2
RSS_SAMPLE_S = 0.2
SIDES = ("lmops", "datatrove", "lmops-rules", "datatrove-ws")  # reversed every other run
LMOPS_EXTRA_WORK = (
    "schema check, normalisation (ftfy, NFC), language id (lingua) and the language "
    "gate, toxicity scoring, PII redaction, exact and MinHash near dedup, GX "
    "validation, Parquet shards + manifest + plots + Data Docs"
)
# Reason families after which lmops has already passed the quality rules
# (signals.py checks language, then quality, then toxicity and PII; dedup comes last).
_AFTER_QUALITY = ("toxicity", "pii", "dedup")


# --------------------------------------------------------------------------- the sides


def side_lmops(corpus: Path, work: Path, workers: int) -> dict:
    """One ``ingest()`` (all five stages); a version failing GX is parked, still measured."""
    from lmops.home import prepare_environment

    prepare_environment()
    from lmops.config import DataConfig
    from lmops.data.catalog import load_manifest
    from lmops.data.ingest import ingest
    from lmops.errors import DataStandardError

    cfg = DataConfig(workers=workers, quality_rules=True, profile="web")
    datasets = work / "datasets"
    t = time.perf_counter()
    try:
        path, error = ingest([str(corpus)], cfg, datasets).path, None
    except DataStandardError:  # parked as .rejected-<id> with its manifest
        path, error = next(datasets.glob(".rejected-*")), "GX failed"
    seconds = time.perf_counter() - t
    m = load_manifest(path)
    if error:
        error += ": " + ", ".join(map(str, m["validation"]["failures"]))
    return {
        "seconds": seconds,
        "profile": "web",
        "published": error is None,
        "gx_error": error,
        "stage_seconds": m["stage_seconds"],
        "input": m["counts"]["input"],
        "accepted": m["counts"]["accepted"],
        "input_bytes": m["counts"]["input_bytes"],
        "reasons": m["counts"]["reasons"],
        "path": str(path),
    }


def side_datatrove(corpus: Path, work: Path, workers: int, lmops_words: bool = False) -> dict:
    """datatrove's four filters; ``lmops_words``: with lmops' word definition and figures.

    With ``lmops_words`` the word-based filters count whitespace tokens, as lmops does,
    and FineWeb's duplicated-line-character limit is lmops' (the paper's) 0.1: the
    configuration in which the two decide alike (docs/data-standard.md, "Agreement with
    datatrove").
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    def excluded(name: str) -> JsonlWriter:
        return JsonlWriter(str(work / "excluded" / name))

    words: dict = {}
    fineweb: dict = {}
    if lmops_words:
        from lmops.data.standard.datatrove_words import WhitespaceWords

        words = {"language": WhitespaceWords("en")}
        fineweb = {"char_duplicates_ratio": 0.1}

    files = sorted(corpus.glob("*.jsonl"))
    t = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(corpus), glob_pattern="*.jsonl", text_key="text", id_key="id"),
            GopherRepetitionFilter(exclusion_writer=excluded("gopher_repetition"), **words),
            GopherQualityFilter(exclusion_writer=excluded("gopher_quality"), **words),
            # The web profile's C4, as FineWeb ran it: no end-punctuation line rule.
            C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=excluded("c4")),
            FineWebQualityFilter(exclusion_writer=excluded("fineweb"), **words, **fineweb),
            JsonlWriter(str(work / "kept")),
        ],
        tasks=max(workers, len(files)),
        workers=workers,
        logging_dir=str(work / "logs"),
    ).run()
    return {"seconds": time.perf_counter() - t}


def _jsonl_gz(folder: Path):
    for p in sorted(folder.rglob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)


# --------------------------------------------------------------------------- timing


def timed(side: str, corpus: Path, work: Path, workers: int) -> dict:
    """Run one side as a fresh process; wall time, RSS of its process tree, its JSON."""
    import psutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "LMOPS_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        __file__,
        "--side",
        side,
        str(corpus),
        str(work),
        "--workers",
        str(workers),
    ]
    peak = {"tree": 0, "one": 0, "procs": 0}
    with (work / "stdout").open("w") as out, (work / "stderr").open("w") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        done = threading.Event()

        # Both executors start worker processes, which getrusage(RUSAGE_CHILDREN) only
        # sees once reaped (datatrove's forkserver reaps its own), so the tree is sampled.
        def sample() -> None:
            while not done.wait(RSS_SAMPLE_S):
                try:
                    root = psutil.Process(proc.pid)
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                rss = []
                for p in tree:
                    with contextlib.suppress(psutil.Error):  # exited since listed
                        rss.append(p.memory_info().rss)
                peak["tree"] = max(peak["tree"], sum(rss))
                peak["one"] = max(peak["one"], max(rss, default=0))
                peak["procs"] = max(peak["procs"], len(rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        wall = time.perf_counter() - t
        done.set()
        sampler.join()
    if proc.returncode:
        raise SystemExit(f"{side} failed on {corpus}:\n{(work / 'stderr').read_text()[-3000:]}")
    res = json.loads((work / "stdout").read_text().strip().splitlines()[-1])
    return {
        **res,
        "wall": wall,
        "rss_tree_peak_mb": peak["tree"] / 2**20,
        "rss_max_process_mb": peak["one"] / 2**20,
        "max_processes": peak["procs"],
    }


# --------------------------------------------------------------------------- corpora


def _shard(records: list[str], dest: Path) -> None:
    """Contiguous runs of records, about equal in bytes, into ``SHARDS`` files."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    total = sum(map(len, records))
    fh, shard, written = None, -1, 0
    for line in records:
        if fh is None or (written >= total * (shard + 1) / SHARDS and shard < SHARDS - 1):
            if fh:
                fh.close()
            shard += 1
            fh = (dest / f"shard-{shard:04d}.jsonl").open("w", encoding="utf-8")
        fh.write(line)
        written += len(line)
    fh.close()


def docs_corpus(out: Path, mb: float) -> tuple[Path, str]:
    """The installed-docs corpus at ``mb`` MB, sharded; repeated with new ids if short."""
    from lmops.corpus.installed_docs import build_installed_docs

    dest = out / f"corpus_docs_{mb:g}mb"
    done = out / f"{dest.name}.note"  # outside the folder: lmops would ingest it
    if done.exists():
        return dest, done.read_text()
    report = build_installed_docs(out / f"installed_docs_{mb:g}mb", int(mb * 1e6))
    lines = (out / f"installed_docs_{mb:g}mb" / "docs.jsonl").read_text("utf-8").splitlines()
    note = "; ".join(s.strip() for s in report.lines()[1:])
    records, copy = [ln + "\n" for ln in lines], 0
    while report.short and sum(len(r.encode()) for r in records) < mb * 1e6:
        copy += 1
        for ln in lines:
            rec = json.loads(ln)
            records.append(json.dumps({**rec, "id": f"{rec['id']}#copy{copy}"}) + "\n")
    if copy:
        note += (
            f"; REPEATED: {report.files} real documents ({report.text_bytes / 1e6:.1f} MB) "
            f"written {copy + 1} times with new ids to reach {mb:g} MB"
        )
    _shard(records, dest)
    done.write_text(note)
    return dest, note


def generated_corpus(out: Path, mb: int) -> tuple[Path, str]:
    from corpus_gen import generate

    dest = out / f"corpus_generated_{mb}mb"
    done = out / f"{dest.name}.done"
    if not done.exists():
        shutil.rmtree(dest, ignore_errors=True)
        generate(dest, mb, shards=SHARDS)
        done.write_text("ok")
    return dest, "recombined stdlib docstrings + bilingual set, 30% Chinese, 8% duplicates"


# --------------------------------------------------------------------------- decisions


def lmops_decisions(version: Path, corpus: Path) -> dict[str, str]:
    """id -> "keep" or the lmops reason family; quarantine rows name (file, line)."""
    import pyarrow.parquet as pq

    ids = {}
    for f in sorted(corpus.glob("*.jsonl")):
        with f.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                ids[(str(f), n)] = json.loads(line)["id"]
    out = {}
    for f in sorted(version.glob("part-*.parquet")):
        out.update(dict.fromkeys(pq.read_table(f, columns=["id"]).column(0).to_pylist(), "keep"))
    for f in sorted(version.glob("quarantine-*.parquet")):
        t = pq.read_table(f, columns=["source_file", "line", "rule"]).to_pydict()
        for file, line, rule in zip(t["source_file"], t["line"], t["rule"], strict=True):
            out[ids.get((file, line), f"{file}:{line}")] = rule
    return out


def datatrove_decisions(work: Path) -> dict[str, str]:
    out = dict.fromkeys((d["id"] for d in _jsonl_gz(work / "kept")), "keep")
    for folder in sorted((work / "excluded").glob("*")):
        for d in _jsonl_gz(folder):
            out[d["id"]] = f"{folder.name}:{d['metadata'].get('filter_reason', '?')}"
    return out


def rules_decisions(work: Path) -> dict[str, str]:
    """The ``lmops-rules`` side's output (datatrove's layout) as lmops reasons."""
    return {i: v if v == "keep" else f"quality:{v}" for i, v in datatrove_decisions(work).items()}


def _quality_verdict(lmops_reason: str) -> str | None:
    """lmops' verdict on the quality rules alone, or None where it stopped before them."""
    if lmops_reason == "keep" or lmops_reason.startswith(_AFTER_QUALITY):
        return "keep"
    if lmops_reason.startswith("quality"):
        return "drop"
    return None  # language, schema or parse: the quality rules never ran


def agreement(lm: dict[str, str], dt: dict[str, str]) -> dict:
    ids = sorted(lm.keys() & dt.keys())
    cells: Counter = Counter()
    q_cells: Counter = Counter()
    pairs: Counter = Counter()
    for i in ids:
        a, b = lm[i] == "keep", dt[i] == "keep"
        cells[(a, b)] += 1
        q = _quality_verdict(lm[i])
        if q is not None:
            q_cells[(q == "keep", b)] += 1
            if (q == "keep") != b:
                pairs[f"lmops {lm[i]} / datatrove {dt[i]}"] += 1
    n, nq = len(ids), sum(q_cells.values())
    return {
        "joined": n,
        "only_lmops": len(lm.keys() - dt.keys()),
        "only_datatrove": len(dt.keys() - lm.keys()),
        "lmops_kept": sum(v == "keep" for v in lm.values()),
        "datatrove_kept": sum(v == "keep" for v in dt.values()),
        "both_keep": cells[(True, True)],
        "lmops_only_keep": cells[(True, False)],
        "datatrove_only_keep": cells[(False, True)],
        "both_drop": cells[(False, False)],
        "agree": (cells[(True, True)] + cells[(False, False)]) / max(n, 1),
        "quality_docs": nq,
        "quality_agree": (q_cells[(True, True)] + q_cells[(False, False)]) / max(nq, 1),
        "quality_lmops_only_keep": q_cells[(True, False)],
        "quality_datatrove_only_keep": q_cells[(False, True)],
        "top_disagreements": pairs.most_common(8),
        "lmops_reasons": Counter(lm.values()).most_common(),
        "datatrove_reasons": Counter(dt.values()).most_common(),
    }


def tokenization(version: Path, work: Path) -> dict:
    """lmops' token-shard build vs a bare ``encode_batch`` loop over the same texts."""
    from lmops.config import TokenizerConfig
    from lmops.data.catalog import iter_texts
    from lmops.data.tokenize import ENCODE_BATCH, build_token_shards
    from lmops.tokenizer import load_tokenizer, train_or_reuse

    shutil.rmtree(work, ignore_errors=True)  # cached shards would time nothing
    folder, tok_id, _ = train_or_reuse(
        lambda: (t for _, t in iter_texts(version)),
        TokenizerConfig(vocab_size=8192),
        version.name,
        work / "tok",
    )
    texts = [t for _, t in iter_texts(version)]
    tok = load_tokenizer(folder).backend_tokenizer
    t = time.perf_counter()
    n_raw = 0
    for i in range(0, len(texts), ENCODE_BATCH):  # lmops' batch size: like for like
        batch = texts[i : i + ENCODE_BATCH]
        n_raw += sum(len(e.ids) for e in tok.encode_batch(batch, add_special_tokens=False))
    raw = time.perf_counter() - t
    t = time.perf_counter()
    shards = build_token_shards(version, folder, tok_id, 0.05, work / "tokens")
    ours = time.perf_counter() - t
    n_ours = shards.train_tokens + shards.val_tokens
    return {"raw_tokens_per_s": n_raw / raw, "ours_tokens_per_s": n_ours / ours, "tokens": n_ours}


# --------------------------------------------------------------------------- report


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def run_corpus(name: str, corpus: Path, out: Path, workers: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    load = [_load()]
    for r in range(repeats):
        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
            print(f"  [{name}] run {r + 1}/{repeats} {side} ...", flush=True)
            runs[side].append(timed(side, corpus, out / "work" / name / side, workers))
    load.append(_load())
    lm_work, dt_work = out / "work" / name / "lmops", out / "work" / name / "datatrove"
    dt_decisions = datatrove_decisions(dt_work)
    decisions = agreement(lmops_decisions(Path(runs["lmops"][-1]["path"]), corpus), dt_decisions)
    rules = agreement(
        rules_decisions(out / "work" / name / "lmops-rules"),
        datatrove_decisions(out / "work" / name / "datatrove-ws"),
    )
    shutil.rmtree(lm_work / "home", ignore_errors=True)
    return {
        "runs": runs,
        "decisions": decisions,
        "rules_decisions": rules,
        "load": load,
        "datatrove_steps": datatrove_step_seconds(dt_work),
    }


def datatrove_step_seconds(work: Path) -> dict[str, float]:
    """Per-step time from the executor's own stats (summed over tasks)."""
    stats = json.loads((work / "logs" / "stats.json").read_text())
    out = {}
    for step in stats:
        kind, _, name = "".join(ch for ch in step["name"] if ch.isascii()).partition(":")
        key = f"{name.strip()} ({kind.strip(' -').lower()})"
        out[key] = step.get("time_stats", {}).get("total", 0.0)
    return out


def _each(runs: list[dict]) -> str:
    return " ".join(f"{r['wall']:.1f}" for r in runs)


def _row(label: str, runs: list[list[dict]], fn, fmt: str) -> str:
    """One table row: ``fn`` of each side's runs, formatted with ``fmt``."""
    return f"{label:40}" + "".join(format(fn(r), fmt) for r in runs)


def summarise(name: str, note: str, res: dict, workers: int) -> list[str]:
    lm, dt, d = res["runs"]["lmops"], res["runs"]["datatrove"], res["decisions"]
    rl, rd = res["runs"]["lmops-rules"], res["rules_decisions"]
    dw = res["runs"]["datatrove-ws"]
    sides = [lm, dt, rl, dw]
    med = statistics.median
    mb = lm[0]["input_bytes"] / 1e6
    ratios = [d["wall"] / m["wall"] for m, d in zip(lm, dt, strict=True)]
    eq_ratios = [d["wall"] / m["wall"] for m, d in zip(rl, dw, strict=True)]
    lines = [
        f"\n=== {name}: {mb:.1f} MB, {lm[0]['input']} docs, {workers} workers, "
        f"{len(lm)} runs per side ===",
        f"corpus: {note}",
        f"machine: {res['load'][0]} before, {res['load'][1]} after",
        f"{'':40}" + "".join(f"{side:>12}" for side in SIDES),
        _row("wall s, median (whole process)", sides, lambda x: med(r["wall"] for r in x), "12.1f"),
        f"wall s, each run: lmops {_each(lm)}; datatrove {_each(dt)}; lmops-rules {_each(rl)}; "
        f"datatrove-ws {_each(dw)}",
        _row(
            "MB/s (input / median wall)", sides, lambda x: mb / med(r["wall"] for r in x), "12.2f"
        ),
        _row(
            "peak RSS, process tree sum, MB *",
            sides,
            lambda x: max(r["rss_tree_peak_mb"] for r in x),
            "12.0f",
        ),
        _row(
            "peak RSS, largest process, MB *",
            sides,
            lambda x: max(r["rss_max_process_mb"] for r in x),
            "12.0f",
        ),
        _row("processes in tree, max", sides, lambda x: max(r["max_processes"] for r in x), "12d"),
        f"{'documents kept':40}{lm[-1]['accepted']:12d}{d['datatrove_kept']:12d}"
        f"{rl[-1]['kept']:12d}{rd['datatrove_kept']:12d}",
        f"* psutil samples of the whole process tree every {RSS_SAMPLE_S} s, max over runs; "
        "the sum counts pages shared by forked workers once per process",
        f"ratio datatrove/lmops wall: median {med(ratios):.2f}x "
        f"(runs: {', '.join(f'{x:.2f}' for x in ratios)})",
        "EQUAL WORK, a separate figure: ratio datatrove-ws/lmops-rules wall: "
        f"median {med(eq_ratios):.2f}x (runs: {', '.join(f'{x:.2f}' for x in eq_ratios)})",
        f"lmops profile {lm[0]['profile']}; published: {lm[-1]['published']}"
        + (f" ({lm[-1]['gx_error']})" if lm[-1]["gx_error"] else ""),
        "lmops stages (median s, MB/s of input):",
    ]
    for stage in lm[0]["stage_seconds"]:
        s = med(r["stage_seconds"][stage] for r in lm)
        lines.append(f"  {stage:10}{s:8.1f} s {mb / s:9.2f} MB/s")
    in_proc = med(r["seconds"] for r in lm)
    startup = med(r["wall"] - r["seconds"] for r in lm)
    lines.append(
        f"  in-process total {in_proc:.1f} s; start-up and exit {startup:.1f} s; "
        f"GX validation share {med(r['stage_seconds']['validate'] / r['seconds'] for r in lm):.1%}"
    )
    lines.append(
        "datatrove steps (s summed over tasks, last run): "
        + ", ".join(f"{k} {v:.1f}" for k, v in res["datatrove_steps"].items())
    )
    lines.append(f"lmops ingest() does on top of datatrove here: {LMOPS_EXTRA_WORK}")
    lines.append(
        "lmops-rules does datatrove's work only: every document English, C4 lines + Gopher + "
        "FineWeb of the web profile, kept and excluded gzipped JSONL; in-process "
        f"{med(r['seconds'] for r in rl):.1f} s (median), start-up and exit "
        f"{med(r['wall'] - r['seconds'] for r in rl):.1f} s"
    )
    lines.append(
        "datatrove-ws is datatrove with lmops' words (whitespace tokens) and FineWeb's "
        "duplicated-line-character limit at lmops' 0.1: the same rules, words and figures "
        "as lmops-rules"
    )
    lines += [
        f"decisions joined on id ({d['joined']} docs; unmatched lmops {d['only_lmops']}, "
        f"datatrove {d['only_datatrove']}):",
        f"  both keep {d['both_keep']}, both drop {d['both_drop']}, lmops-only keep "
        f"{d['lmops_only_keep']}, datatrove-only keep {d['datatrove_only_keep']}: "
        f"agreement {d['agree']:.1%}",
        f"  quality rules alone ({d['quality_docs']} docs lmops judged on quality): "
        f"agreement {d['quality_agree']:.1%}, lmops-only keep {d['quality_lmops_only_keep']}, "
        f"datatrove-only keep {d['quality_datatrove_only_keep']}",
        "  lmops reasons: " + ", ".join(f"{k} {v}" for k, v in d["lmops_reasons"][:10]),
        "  datatrove reasons: " + ", ".join(f"{k} {v}" for k, v in d["datatrove_reasons"][:10]),
        "  top quality disagreements: "
        + ("; ".join(f"{k}: {v}" for k, v in d["top_disagreements"]) or "none"),
        f"lmops-rules against datatrove-ws, joined on id ({rd['joined']} docs; unmatched "
        f"lmops-rules {rd['only_lmops']}, datatrove-ws {rd['only_datatrove']}):",
        f"  both keep {rd['both_keep']}, both drop {rd['both_drop']}, lmops-rules-only keep "
        f"{rd['lmops_only_keep']}, datatrove-ws-only keep {rd['datatrove_only_keep']}: "
        f"agreement {rd['agree']:.1%} (docs/data-standard.md, 'Agreement with datatrove', "
        "explains each class)",
        "  lmops-rules reasons: " + ", ".join(f"{k} {v}" for k, v in rd["lmops_reasons"][:10]),
        "  top disagreements: "
        + ("; ".join(f"{k}: {v}" for k, v in rd["top_disagreements"]) or "none"),
    ]
    return lines


def target_line(name: str, res: dict, mb: float, workers: int) -> str:
    lm, dt = res["runs"]["lmops"], res["runs"]["datatrove"]
    ratio = statistics.median(d["wall"] / m["wall"] for m, d in zip(lm, dt, strict=True))
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    where = f"{name}, {workers} workers"
    if (mb, workers) != (TARGET_MB, TARGET_WORKERS):
        verdict += f" (target defined at {TARGET_MB} MB, {TARGET_WORKERS} workers: indicative)"
    return f"\nTARGET lmops >= {TARGET_RATIO:g}x datatrove's wall ({where}): {ratio:.2f}x {verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run per side")
    ap.add_argument("--repeats", type=int, help="runs per side (default 3; 1 with --quick)")
    ap.add_argument("--workers", type=int, default=TARGET_WORKERS)
    ap.add_argument("--mb", type=float, help=f"target docs size (default {TARGET_MB})")
    ap.add_argument("--real-mb", type=float, help="smaller real docs corpus (default 20)")
    ap.add_argument("--generated-mb", type=int, help="generated corpus (default 20; 0 = skip)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--side", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        from rules_only_side import side_lmops_rules

        fn = {
            "lmops": side_lmops,
            "datatrove": side_datatrove,
            "lmops-rules": side_lmops_rules,
            "datatrove-ws": partial(side_datatrove, lmops_words=True),
        }[args.side[0]]
        print(json.dumps(fn(Path(args.side[1]), Path(args.side[2]), args.workers)))
        return

    small = (2, 4, 4) if args.quick else (20, 20, TARGET_MB)
    real_mb = args.real_mb if args.real_mb is not None else small[0]
    gen_mb = args.generated_mb if args.generated_mb is not None else small[1]
    mb = args.mb if args.mb is not None else small[2]
    repeats = args.repeats or (1 if args.quick else 3)
    out = args.out / ("quick" if args.quick else "full")
    print(
        f"ingest_throughput: {platform.platform()}, Python {platform.python_version()}, "
        f"{_load()}, {args.workers} workers, {repeats} runs per side"
    )
    corpora = {}
    if gen_mb:
        corpora[f"generated-{gen_mb}mb"] = generated_corpus(out, gen_mb)
    for size in dict.fromkeys((real_mb, mb)):
        corpora[f"docs-{size:g}mb"] = docs_corpus(out, size)
    results, lines = {}, []
    for name, (path, note) in corpora.items():
        print(f"{name}: {note}", flush=True)
        results[name] = run_corpus(name, path, out, args.workers, repeats)
        lines += summarise(name, note, results[name], args.workers)
    small_docs, big_docs = results[f"docs-{real_mb:g}mb"], results[f"docs-{mb:g}mb"]
    if real_mb != mb:
        lines.append(
            f"\nlmops peak RSS (tree) docs-{real_mb:g}mb -> docs-{mb:g}mb: "
            + " -> ".join(
                f"{max(r['rss_tree_peak_mb'] for r in x['runs']['lmops']):.0f} MB"
                for x in (small_docs, big_docs)
            )
        )
    tok = None
    if gen_mb:
        print("tokenization ...", flush=True)
        version = Path(results[f"generated-{gen_mb}mb"]["runs"]["lmops"][-1]["path"])
        tok = tokenization(version, out / "work" / "tokenization")
        lines.append(
            f"\ntokenization (generated-{gen_mb}mb accepted docs): lmops shards "
            f"{tok['ours_tokens_per_s']:,.0f} tok/s vs raw encode_batch "
            f"{tok['raw_tokens_per_s']:,.0f} tok/s = "
            f"{tok['ours_tokens_per_s'] / tok['raw_tokens_per_s']:.2f}x ({tok['tokens']:,} tokens)"
        )
    lines.append(target_line(f"docs-{mb:g}mb", big_docs, mb, args.workers))
    print("\n".join(lines))
    summary = {"args": vars(args) | {"out": str(out)}, "results": results, "tokenization": tok}
    (out / "ingest_throughput.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
