"""The datatrove baseline: reader → Gopher/C4/FineWeb quality → MinHash dedup → writer.

The same steps lmops' ingest does (minus language id, toxicity and PII, which
lmops does on top), with datatrove's defaults and ``LocalPipelineExecutor`` on
all cores. MinHash runs as datatrove's four stages (signatures, buckets,
clusters, filter) with 14 buckets x 8 hashes, as lmops.
"""

from __future__ import annotations

import time
from pathlib import Path


def run_datatrove(corpus: Path, work: Path, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    files = sorted(p.name for p in corpus.glob("*.jsonl"))
    tasks = max(workers, len(files))
    times = {}

    def reader():
        return JsonlReader(str(corpus), glob_pattern="*.jsonl", text_key="text", id_key="id")

    t = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            reader(),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            JsonlWriter(str(work / "filtered")),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=str(work / "logs" / "quality"),
    ).run()
    times["quality"] = time.perf_counter() - t
    stages = [
        (
            "signatures",
            [
                JsonlReader(str(work / "filtered")),
                MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg),
            ],
            tasks,
        ),
        (
            "buckets",
            [
                MinhashDedupBuckets(
                    input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg
                )
            ],
            cfg.num_buckets,
        ),
        (
            "cluster",
            [
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"),
                    output_folder=str(work / "remove"),
                    config=cfg,
                )
            ],
            1,
        ),
        (
            "filter",
            [
                JsonlReader(str(work / "filtered")),
                MinhashDedupFilter(input_folder=str(work / "remove")),
                JsonlWriter(str(work / "deduped")),
            ],
            tasks,
        ),
    ]
    for name, pipeline, n in stages:
        t = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=n, workers=workers, logging_dir=str(work / "logs" / name)
        ).run()
        times[name] = time.perf_counter() - t
    kept = sum(1 for p in (work / "deduped").rglob("*.jsonl*") for _ in _lines(p))
    return {
        "seconds": sum(times.values()),
        "stage_seconds": times,
        "kept": kept,
        "files": len(files),
    }


def _lines(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from fh
