"""The installed-docs corpus: deterministic, deduplicated, raw files kept with their suffix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmops.corpus.installed_docs import (
    MARKUP_SUFFIXES,
    TEXT_SUFFIXES,
    Root,
    build_installed_docs,
)

PROSE = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. " * 4


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "docs.jsonl").read_text("utf-8").splitlines()]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_this_machines_docs_are_deterministic_and_unique(tmp_path):
    a = build_installed_docs(tmp_path / "a", min_bytes=200_000)
    if a.files == 0:
        pytest.skip("no Markdown/reST/HTML documentation installed on this machine")
    b = build_installed_docs(tmp_path / "b", min_bytes=200_000)
    assert (b.files, b.text_bytes) == (a.files, a.text_bytes)
    assert (tmp_path / "a" / "docs.jsonl").read_bytes() == (
        tmp_path / "b" / "docs.jsonl"
    ).read_bytes()
    assert _tree(tmp_path / "a" / "raw") == _tree(tmp_path / "b" / "raw")
    assert a.text_bytes >= 200_000 or a.short

    recs = _records(tmp_path / "a")
    assert len(recs) == a.files
    assert len({r["id"] for r in recs}) == len(recs)
    assert len({r["text"] for r in recs}) == len(recs)
    for r in recs:
        assert set(r) == {"id", "text", "source", "license"}
        assert r["text"].strip(), r["id"]
        raw = tmp_path / "a" / "raw" / r["id"]
        assert raw.suffix.lower() in MARKUP_SUFFIXES + TEXT_SUFFIXES, r["id"]
        # The JSONL text is the raw file with only the BOM and line ends handled.
        body = raw.read_bytes().decode("utf-8").removeprefix("\ufeff")
        assert body.replace("\r\n", "\n").replace("\r", "\n") == r["text"]


def test_skips_duplicates_licences_small_and_non_utf8_files(tmp_path):
    src, other = tmp_path / "src", tmp_path / "other"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.md").write_text(PROSE + "\r\nsecond line\r\n", "utf-8")
    (src / "pkg" / "b.md").write_text(PROSE + "\r\nsecond line\r\n", "utf-8")  # same bytes
    (src / "pkg" / "LICENSE.md").write_text(PROSE + " MIT", "utf-8")
    (src / "pkg" / "tiny.rst").write_text("Too short.", "utf-8")
    (src / "pkg" / "latin1.html").write_bytes(("<p>caf\xe9 " + PROSE).encode("latin-1"))
    (src / "pkg" / "page.HTML").write_text("<p>" + PROSE + "</p>", "utf-8")
    (src / "pkg" / "data.txt").write_text("1 2 3\n" * 100, "utf-8")  # .txt outside doc/
    (src / "pkg" / "doc").mkdir()
    (src / "pkg" / "doc" / "guide.txt").write_text(PROSE + " guide", "utf-8")
    (other / "pkg").mkdir(parents=True)
    (other / "pkg" / "a.md").write_text(PROSE + " from another root", "utf-8")
    roots = [Root("one", src), Root("two", other)]

    report = build_installed_docs(tmp_path / "out", min_bytes=10**9, roots=roots)

    recs = {r["id"]: r for r in _records(tmp_path / "out")}
    # Markup first, in sorted order; .txt only from doc folders once markup fell short.
    assert list(recs) == ["pkg/a.md", "pkg/page.HTML", "pkg@two/a.md", "pkg/doc/guide.txt"]
    assert recs["pkg/a.md"]["text"] == PROSE + "\nsecond line\n"
    assert recs["pkg@two/a.md"]["source"] == "two"
    assert report.used_text_files and report.short
    assert report.skipped == {
        "duplicate": 1,
        "licence": 1,
        "too_small": 1,
        "not_utf8_or_unreadable": 1,
    }
    assert (tmp_path / "out" / "raw" / "pkg" / "page.HTML").read_bytes() == (
        src / "pkg" / "page.HTML"
    ).read_bytes()


def test_stops_once_min_bytes_is_reached_and_rebuild_drops_stale_files(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    for name in ("a.md", "b.rst", "c.html"):
        (src / "pkg" / name).write_text(f"{name} {PROSE}", "utf-8")
    roots = [Root("one", src)]
    build_installed_docs(tmp_path / "out", min_bytes=10**9, roots=roots)
    report = build_installed_docs(tmp_path / "out", min_bytes=1, roots=roots)
    assert report.files == 1 and not report.short
    assert [r["id"] for r in _records(tmp_path / "out")] == ["pkg/a.md"]
    assert sorted(_tree(tmp_path / "out" / "raw")) == ["pkg/a.md"]
