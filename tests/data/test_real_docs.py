"""A real corpus nobody here wrote: the Markdown, reST and HTML docs installed in the venv.

Built offline by lmops.corpus.installed_docs from site-packages (the same pinned packages
on every machine that runs `make test`), ingested as files through the markup readers.
"""

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from lmops.config import DataConfig
from lmops.corpus.installed_docs import build_installed_docs, default_roots
from lmops.data.ingest import ingest
from lmops.errors import DataStandardError


@pytest.fixture(scope="module")
def installed_docs(tmp_path_factory):
    out = tmp_path_factory.mktemp("installed-docs")
    site = [r for r in default_roots() if r.label == "site-packages"]
    rep = build_installed_docs(out, min_bytes=3_000_000, roots=site)
    assert rep.files >= 200, rep.lines()
    return out / "raw"


def _reasons(folder) -> Counter:
    rows = pq.read_table(sorted(folder.glob("quarantine-*.parquet"))).to_pylist()
    return Counter(":".join(r["reason"].split(":")[:3]) for r in rows)


def test_docs_profile_keeps_most_documentation_and_web_rejects_it_for_code(
    installed_docs, tmp_path
):
    docs = ingest([str(installed_docs)], DataConfig(profile="docs"), tmp_path / "a", False)
    assert docs.accepted >= 0.8 * docs.input, docs.reasons
    texts = pq.read_table(sorted(docs.path.glob("part-*.parquet")), columns=["text"])
    assert not any("```" in t for t in texts.column("text").to_pylist())

    with pytest.raises(DataStandardError, match="Profile used: 'web'.*docs, short, web"):
        ingest([str(installed_docs)], DataConfig(), tmp_path / "b", False)
    rejected = next((tmp_path / "b").glob(".rejected-*"))
    counts = json.loads((rejected / "manifest.json").read_text())["counts"]
    assert counts["accepted"] < 0.3 * counts["input"]
    reasons = _reasons(rejected)
    # Code samples carry braces (C4 drops the page); identifiers and symbols are not
    # words (Gopher's letter-word share); headings and list items end without a full stop.
    top = [r for r, _ in reasons.most_common(3)]
    assert top[0] == "quality:c4:curly_bracket", reasons
    assert "quality:gopher_quality:alpha_words_ratio" in top, reasons
    assert reasons["quality:fineweb:terminal_punct_lines_ratio"] > 0, reasons
