"""Read speed of a documentation folder: the ingest's read stage on raw Markdown, reST, HTML.

    .venv/bin/python benchmarks/markup_read.py             # 50 MB of this machine's docs
    .venv/bin/python benchmarks/markup_read.py --mb 20 --runs 5

The corpus is the ``raw/`` folder that ``lmops.corpus.installed_docs`` builds from the
documentation installed on this machine (the one ``ingest_throughput.py`` shards as
JSONL); nothing is downloaded. Three sides read it with
``lmops.data.sources.read_sources``, each as a fresh subprocess timed from start to exit
(imports and pool start included), ``--runs`` times in rotating order:

* ``before``: one process, with the two parser shortcuts undone, as the read ran before
  them: docutils builds its settings for every reST file, markdown-it normalises every
  link;
* ``serial``: one process, as the read stage runs with ``workers = 1``;
* ``pooled``: 2 workers, as the read stage runs on 2 cores (markup files parsed in a
  process pool, ``lmops.data.ordered_pool``).

Every run hashes the items it read (file, line, payload, raw preview, error, in order);
the script checks that all sides read the same items, and reports each side's median
wall and MB/s and the median, over runs, of ``before`` / ``serial`` and ``before`` /
``pooled`` within a run. Results also go to ``benchmarks/out/markup_read.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDES = ("before", "serial", "pooled")


def _undo_shortcuts() -> None:
    """The ``before`` side: the parsers configured as they were before the shortcuts."""
    from docutils.core import publish_doctree
    from markdown_it import MarkdownIt

    from lmops.data import markup

    def rst_to_text(source, code_blocks="keep"):
        if any(len(line) > markup.RST_LINE_LIMIT for line in source.splitlines()):
            raise markup.MarkupError(f"line_over_{markup.RST_LINE_LIMIT}_chars")
        tree = publish_doctree(
            source, parser=markup._rst_parser(), settings_overrides=markup._RST_SETTINGS
        )
        return markup._join(markup._rst_blocks(tree, code_blocks, markup._rst_drop()))

    markup._CONVERTERS["rst"] = rst_to_text
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    markup._markdown_parser = lambda: parser


def run_side(side: str, folder: str) -> None:
    """In the subprocess: read the folder, print seconds, items and their digest as JSON."""
    from lmops.data.sources import expand_sources, read_sources

    if side == "before":
        _undo_shortcuts()
    digest, n = hashlib.sha256(), 0
    workers = 2 if side == "pooled" else 1
    for item in read_sources(expand_sources([folder]), workers=workers):
        digest.update(pickle.dumps((item.file, item.line, item.payload, item.raw, item.error)))
        n += 1
    print(json.dumps({"items": n, "digest": digest.hexdigest()}))


def measure(side: str, folder: Path) -> dict:
    t = time.perf_counter()
    cmd = [sys.executable, __file__, "--side", side, str(folder)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {"wall": time.perf_counter() - t, **json.loads(out.strip().splitlines()[-1])}


def corpus(mb: float) -> tuple[Path, float]:
    """The raw installed-docs folder of ``mb`` MB (built once) and its markup MB."""
    from lmops.corpus.installed_docs import build_installed_docs
    from lmops.data.readers import MARKUP_SUFFIXES, _split_suffix

    root = HERE / "out" / "full" / f"installed_docs_{mb:g}mb"
    if not (root / "docs.jsonl").exists():
        build_installed_docs(root, int(mb * 1e6))
    raw = root / "raw"
    markup_mb = sum(
        p.stat().st_size for p in raw.rglob("*") if _split_suffix(p.name)[0] in MARKUP_SUFFIXES
    )
    return raw, markup_mb / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=float, default=50, help="corpus size (default 50)")
    ap.add_argument("--runs", type=int, default=3, help="runs per side (>= 3)")
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("folder", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return run_side(args.side, args.folder)
    if args.runs < 3:
        ap.error("--runs must be at least 3: the script reports medians")
    folder, markup_mb = corpus(args.mb)
    total_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    print(f"corpus {folder}: {total_mb:.1f} MB, markup {markup_mb:.1f} MB; {os.cpu_count()} cores")
    runs: list[dict[str, dict]] = []
    for r in range(args.runs):
        order = SIDES[r % 3 :] + SIDES[: r % 3]
        run = {side: measure(side, folder) for side in order}
        runs.append(run)
        print(
            f"run {r + 1}: " + ", ".join(f"{s} {run[s]['wall']:.1f} s" for s in SIDES), flush=True
        )
    digests = {run[s]["digest"] for run in runs for s in SIDES}
    same = len(digests) == 1
    med = {s: statistics.median(run[s]["wall"] for run in runs) for s in SIDES}
    ratio = {
        s: statistics.median(run["before"]["wall"] / run[s]["wall"] for run in runs)
        for s in ("serial", "pooled")
    }
    items = runs[0]["serial"]["items"]
    for s in SIDES:
        print(f"{s:>7}: median {med[s]:.1f} s, {total_mb / med[s]:.2f} MB/s")
    print(f"before / serial: {ratio['serial']:.2f}x; before / pooled: {ratio['pooled']:.2f}x")
    print(f"outputs: {items} items, {'identical on every side and run' if same else 'DIFFER'}")
    report = {"folder": str(folder), "mb": total_mb, "markup_mb": markup_mb, "runs": runs}
    report.update(median_wall=med, median_ratio=ratio, identical=same, cores=os.cpu_count())
    out = HERE / "out" / "markup_read.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    if not same:
        sys.exit("the sides read different items")


if __name__ == "__main__":
    main()
