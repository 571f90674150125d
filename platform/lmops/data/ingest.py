"""Ingest: stream sources through the data standard into a dataset version.

:func:`ingest` runs the stages in order; each is a function of its own module
(``lmops.data.stage_<name>``), testable alone, and the Prefect flow
(``pipelines/ingest.py``) passes a ``run_stage`` that runs each as a task:

0. ``hash``     hash the source files: the version id, and a cache hit ends here
1. ``read``     parse and schema-check every record -> candidates (Parquet, staged)
2. ``annotate`` normalise, language id, quality, toxicity, PII, MinHash (parallel)
3. ``decide``   reasons, exact and near dedup (also against earlier versions)
4. ``validate`` Great Expectations on per-document metrics and dataset statistics
5. ``publish``  manifest, plots, Data Docs, one atomic rename

With ``RAY_ADDRESS`` set, read, annotate and decide run as Ray Data pipelines on the
cluster (``ray_read``, ``ray_decide``) with the same decisions, row for row; validate
then checks per-partition statistics, and publish commits what the workers wrote.

Every input record ends accepted or quarantined with a reason, and
``input == accepted + quarantined`` is checked before anything is published.
A stage may be retried: it replaces, never appends to, what an earlier attempt wrote.
The version id is a content hash: the same input gives the same version.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmops import side_process
from lmops.config import DataConfig
from lmops.data.catalog import load_manifest
from lmops.data.publish import StagedVersion
from lmops.data.stage_annotate import stage_annotate
from lmops.data.stage_decide import stage_decide
from lmops.data.stage_hash import hash_sources, version_id_for
from lmops.data.stage_publish import build_manifest, stage_publish
from lmops.data.stage_read import stage_read
from lmops.data.stage_validate import dataset_stats, stage_validate
from lmops.data.standard import load_standard
from lmops.data.store import check_root
from lmops.data.validate import ValidationOutcome
from lmops.progress import reporter

# Input size from which the library's ingest() starts a side process for GX (see there).
SIDE_PROCESS_BYTES = 8 << 20


@dataclass
class IngestReport:
    """The accounting of one ingest: what came in, what was kept, and why the rest was not."""

    version_id: str
    path: Path
    created: bool
    input: int
    accepted: int
    quarantined: int
    reasons: Counter = field(default_factory=Counter)
    langs: Counter = field(default_factory=Counter)
    accepted_bytes: int = 0
    validation: ValidationOutcome | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    input_bytes: int = 0
    cached: bool = False  # the version was already published: nothing ran past ``hash``
    executor: dict = field(default_factory=dict)  # where it ran: local pool or Ray cluster

    def stage_rates(self) -> list[tuple[str, float, float, float]]:
        """(stage, seconds, rows/s, bytes/s) for each stage that ran.

        Rows and bytes are each stage's input: every record and source byte for
        ``read``, the candidates for ``annotate`` and ``decide`` (their bytes are the
        source bytes), the accepted documents and their bytes for ``validate`` and
        ``publish``.
        """
        candidates = self.input - sum(
            n for r, n in self.reasons.items() if r.startswith(("parse:", "schema:"))
        )
        work = {
            "hash": (0, self.input_bytes),
            "read": (self.input, self.input_bytes),
            "annotate": (candidates, self.input_bytes),
            "decide": (candidates, self.input_bytes),
            "validate": (self.accepted, self.accepted_bytes),
            "publish": (self.accepted, self.accepted_bytes),
        }
        out = []
        for stage, secs in self.stage_seconds.items():
            rows, nbytes = work.get(stage, (0, 0))
            t = max(secs, 1e-9)
            out.append((stage, secs, rows / t, nbytes / t))
        return out

    @property
    def balanced(self) -> bool:
        return self.input == self.accepted + self.quarantined

    def accounting_line(self) -> str:
        mark = "OK" if self.balanced else "MISMATCH"
        return (
            f"input {self.input} = accepted {self.accepted} + quarantined {self.quarantined} "
            f"[{mark}]"
        )


def on_ray() -> bool:
    """Whether this ingest runs on a Ray cluster: ``RAY_ADDRESS`` is set."""
    return bool(os.environ.get("RAY_ADDRESS"))


def stage_functions() -> tuple[Callable, Callable, Callable]:
    """read, annotate and decide: the local pool's, or Ray Data's on a cluster."""
    if on_ray():
        from lmops.data.ray_decide import ray_decide
        from lmops.data.ray_read import ray_annotate, ray_read

        return ray_read, ray_annotate, ray_decide
    return stage_read, stage_annotate, stage_decide


def executor_info() -> dict:
    """Where the stages ran: ``local`` (with its worker count) or ``ray`` (nodes, CPUs)."""
    if not on_ray():
        return {"kind": "local", "nodes": 1, "cpus": os.cpu_count() or 1}
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return {"kind": "ray", "nodes": len(nodes), "cpus": cpus}


def run_directly(name: str, fn: Callable, *args, **kwargs) -> Any:
    """The default ``run_stage``: call the stage in this process, once."""
    return fn(*args, **kwargs)


def ingest(
    sources: list[str],
    cfg: DataConfig,
    datasets_root: Path,
    data_docs: bool = True,
    run_stage: Callable[..., Any] = run_directly,
) -> IngestReport:
    """Hash the sources, then read -> annotate -> decide -> validate -> publish.

    ``run_stage(name, fn, *args, **kwargs)`` runs each stage and returns its result; the
    Prefect flow passes one that runs the stage as a task with that stage's retries.
    An input already published returns its version (``cached``) after ``hash``. A
    dataset that fails the standard raises
    :class:`~lmops.data.stage_publish.RejectedVersion`.
    """
    std = load_standard(cfg)
    times: dict[str, float] = {}
    read_fn, annotate_fn, decide_fn = stage_functions()

    def stage(name: str, fn: Callable, *args) -> Any:
        t = time.perf_counter()
        out = run_stage(name, fn, *args)
        times[name] = time.perf_counter() - t
        return out

    check_root(datasets_root)
    src = stage("hash", hash_sources, sources)
    existing = datasets_root / version_id_for(std, cfg, src.files, src.hashes)
    if (existing / "manifest.json").exists():
        return report_from_manifest(existing, False, None, {}, cached=True)
    # On a large input, GX and matplotlib import in a side process, on the core that
    # reading (one core) leaves free, rather than here after decide: 2.4 s less on 50 MB.
    # (Starting the annotate pool then too was measured slower: four processes on two
    # cores while reading.) Small inputs skip it, as a process per call would cost more
    # than it saves; `lmops ingest` starts one for every input.
    own_side_process = src.total_bytes >= SIDE_PROCESS_BYTES and not side_process.started()
    staged = StagedVersion(datasets_root)
    try:
        if own_side_process:
            side_process.start(side_process.INGEST_MODULES)
        with reporter().task("ingest: records read") as advance:
            read = stage("read", read_fn, src, cfg, std, staged, advance)
        with reporter().task("ingest: documents scored", total=read.n_candidates) as advance:
            stage("annotate", annotate_fn, staged, std, cfg, read.n_candidates, advance)
        # A stage keeps its input (a retry reads it again); it goes once the next stage is done.
        staged.drop("candidates")
        dec = stage("decide", decide_fn, staged, std, cfg, read, datasets_root)
        staged.drop("annotated")
        stats = dataset_stats(read, dec)
        with reporter().task("ingest: Great Expectations"):
            outcome = stage("validate", stage_validate, staged, std, cfg, stats, data_docs)
        manifest = build_manifest(std, cfg, read, dec, stats, outcome, dict(times))
        manifest["executor"] = executor_info()
        path, created = stage("publish", stage_publish, staged, manifest, outcome, datasets_root)
    except BaseException:
        staged.discard()
        raise
    finally:
        if own_side_process:
            side_process.stop()
    return report_from_manifest(path, created, outcome, times)


def report_from_manifest(
    path: Path, created: bool, outcome, times: dict, cached: bool = False
) -> IngestReport:
    m = load_manifest(path)
    c = m["counts"]
    return IngestReport(
        m["version_id"],
        path,
        created,
        c["input"],
        c["accepted"],
        c["quarantined"],
        Counter(c["reasons"]),
        Counter(c["langs"]),
        c["accepted_bytes"],
        outcome,
        times,
        c.get("input_bytes", 0),
        cached,
        m.get("executor", {}),
    )
