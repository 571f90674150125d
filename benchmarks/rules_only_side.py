"""The ``lmops-rules`` side of ``ingest_throughput.py``: datatrove's work, lmops' code.

What the datatrove side does, and nothing more: read the JSONL shards, treat every
document as English, apply the ``web`` profile's English quality rules, write the kept
documents and, per rule family, the excluded ones as gzipped JSONL. The rules are
lmops' own functions, called as the ingest's annotate stage calls them
(``lmops.data.signals._quality``): ``c4_lines`` first (its text is what is kept), then
``lazy_quality_signals`` and ``quality_decision``, which checks Gopher quality, Gopher
repetition, C4's document rules and FineWeb in its fixed order. Records are read with
the ingest's reader (``read_source_file``). No schema check, normalisation, language
id, toxicity, PII, dedup or GX: datatrove does none of them here.

Output layout is datatrove's, so ``datatrove_decisions`` reads both: ``kept/`` and
``excluded/<family>/``, one ``<rank>.jsonl.gz`` per task, each line
``{"text", "id", "metadata"}`` with the record's other fields, ``file_path`` and, for
an excluded document, ``filter_reason``.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path


def _shard_task(rank: int, path: str, th, out: str) -> dict[str, int]:
    """One shard: read, decide, write. Runs in a pool worker (or in-process)."""
    from lmops.data.readers import read_source_file
    from lmops.data.standard.c4 import c4_lines
    from lmops.data.standard.quality_rules import quality_decision
    from lmops.data.standard.quality_signals import lazy_quality_signals

    files: dict[str, gzip.GzipFile] = {}  # opened on the first document, as datatrove's
    counts: Counter = Counter()
    with ExitStack() as stack:

        def write(folder: str, doc: dict) -> None:
            if folder not in files:
                dest = Path(out) / folder / f"{rank:05d}.jsonl.gz"
                dest.parent.mkdir(parents=True, exist_ok=True)
                # gzip at level 9, as datatrove's writer (fsspec's gzip default)
                files[folder] = stack.enter_context(gzip.open(dest, "wb"))
            files[folder].write(json.dumps(doc, ensure_ascii=False).encode() + b"\n")

        for item in read_source_file(path):
            if item.error:  # datatrove's reader would fail or skip; none in these corpora
                counts["unreadable"] += 1
                continue
            rec = item.payload
            text = rec["text"]
            meta = {k: v for k, v in rec.items() if k not in ("text", "id")}
            meta["file_path"] = path
            c4 = c4_lines(text, th)
            ok, why = quality_decision(lazy_quality_signals(text, "en", th, c4), "en", th)
            if ok:
                counts["kept"] += 1
                write("kept", {"text": c4.text, "id": rec["id"], "metadata": meta})
                continue
            family, _, rule = why.partition(":")
            counts[family] += 1
            # datatrove's FineWeb filter sees (and excludes) the text its C4 filter left.
            doc_text = c4.text if family == "fineweb" else text
            meta["filter_reason"] = rule
            write(f"excluded/{family}", {"text": doc_text, "id": rec["id"], "metadata": meta})
    return dict(counts)


def side_lmops_rules(corpus: Path, work: Path, workers: int) -> dict:
    """datatrove's pipeline with lmops' reader and rules, ``workers`` processes."""
    from lmops.config import DataConfig
    from lmops.data.standard import load_standard

    # The ingest side's standard: same config, so the same resolved thresholds.
    std = load_standard(DataConfig(workers=workers, quality_rules=True, profile="web"))
    th = std.thresholds_for("en")
    files = sorted(corpus.glob("*.jsonl"))
    t = time.perf_counter()
    # lmops.data.executor.map_local is not used: it maps the fixed annotate_table (language
    # id, toxicity, PII, MinHash on top of the rules) over the ingest's staged Parquet
    # batches, and staging would be work datatrove does not do. Its pool is copied
    # instead: a spawn-context ProcessPoolExecutor of ``workers`` processes, fed one task
    # per shard as datatrove's executor is (tasks = files, ranks in file order).
    tasks = [(rank, str(f), th, str(work)) for rank, f in enumerate(files)]
    if workers <= 1:
        results = [_shard_task(*task) for task in tasks]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_shard_task, *zip(*tasks, strict=True)))
    seconds = time.perf_counter() - t
    counts: Counter = Counter()
    for r in results:
        counts.update(r)
    kept = counts.pop("kept", 0)
    return {
        "seconds": seconds,
        "profile": "web",
        "input": kept + sum(counts.values()),
        "kept": kept,
        "excluded": dict(counts),
        "input_bytes": sum(f.stat().st_size for f in files),
    }
