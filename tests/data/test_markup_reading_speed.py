"""The faster markup read gives what the plain one gave.

Three speed-ups, each checked against the slow way it replaces: docutils settings built
once (not per document), markdown-it's link normalisation skipped where it cannot change
the parse, and markup files parsed in a process pool during the read (same items, same
order); and the pools' workers forked warm. Times are in ``benchmarks/markup_read.py``
and ``benchmarks/ingest_throughput.py``, not here.
"""

import multiprocessing
import operator

import pytest

from lmops.data import markup, sources
from lmops.data.ordered_pool import Local, ordered_map

# Documents whose settings-dependent parts differ: a title promoted from a section,
# section numbers (a transform that writes into the settings), substitutions, footnotes,
# a table of contents, a field list, Sphinx roles, an unknown directive, an include.
RST_DOCS = [
    "=====\nTitle\n=====\n\nIntro with |name|.\n\n.. |name| replace:: lmops\n\n"
    "Part\n====\n\nText.\n",
    ".. sectnum::\n   :depth: 2\n\nFirst\n=====\n\nAlpha text.\n\nSub\n---\n\nBeta text.\n\n"
    "Second\n======\n\nGamma text.\n",
    "One\n===\n\nText [#f1]_ and :func:`~pkg.mod.fn` and :ref:`Guide <guide>`.\n\n"
    ".. [#f1] A footnote.\n\nTwo\n===\n\n.. contents::\n\n.. toctree::\n   a\n   b\n",
    ":Author: someone\n:Version: 1\n\nBody text.\n\n.. note:: Careful.\n\n"
    "- a\n- b\n\n#. one\n#. two\n",
    # File insertion is off: the settings that say so must reach every document.
    f"Before.\n\n.. include:: {__file__}\n   :literal:\n\nAfter.\n",
    "No sections, just a paragraph, then a literal::\n\n    code = 1\n\nand a *word*.\n",
]
MARKDOWN_LINKS = [
    "[a](https://example.com/path?q=1#x) and [b](/rel/path) and <https://example.org>",
    "[x](javascript:alert(1)) [y](JAVASCRIPT:alert(1)) [z](< javascript:alert(1)>)",
    "[r]: javascript:alert(1)\n\n[r] stays text when its definition is refused",
    # Refused as written, accepted once normalised (the space becomes %20): a definition.
    "[q]: < javascript:x>\n\n[q] is a link",
    "[d]: data:text/html,<b>x</b>\n[i]: data:image/png;base64,AAAA\n\n[d] [i]",
    "[f](file:///etc/passwd) [v](vbscript:msgbox) <javascript:alert(1)>",
    "[u](https://例え.jp/パス) [p](ja%76ascript:x) [s](java\\script:x)",
    "<mail@example.com> [e](mailto:a@b.c) [ref]\n\n[ref]: <https://x.y/a b> 'title'",
]


def test_rst_settings_built_once_give_what_docutils_builds_per_document():
    from docutils.core import publish_doctree

    def slow(source):  # as rst_to_text parsed before: settings built for this call
        tree = publish_doctree(
            source, parser=markup._rst_parser(), settings_overrides=markup._RST_SETTINGS
        )
        return markup._join(markup._rst_blocks(tree, "keep", markup._rst_drop()))

    # Twice over, in order: a document that writes into its settings (sectnum) must not
    # change the next one's.
    for source in RST_DOCS + RST_DOCS:
        assert markup.rst_to_text(source) == slow(source)
    numbered = markup.rst_to_text(RST_DOCS[1])  # the numbering transform ran
    assert "1\xa0\xa0\xa0First" in numbered and "Beta text." in numbered
    assert "lmops" in markup.rst_to_text(RST_DOCS[0])  # the substitution transform ran
    assert markup.rst_to_text(RST_DOCS[4]) == "Before.\n\nAfter."  # nothing read from disk


def test_markdown_link_normalisation_skipped_only_where_it_cannot_matter():
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

    full = MarkdownIt("commonmark").enable(["table", "strikethrough"])  # normalises every link
    for source in MARKDOWN_LINKS:
        ours = markup._markdown_parser().parse(source)
        theirs = full.parse(source)
        assert [(t.type, t.content) for t in ours] == [(t.type, t.content) for t in theirs]
        assert markup.markdown_to_text(source) == markup._join(
            markup._md_blocks(SyntaxTreeNode(theirs), "keep")
        )
    # The refused reference definition is still refused: its line stays as text.
    assert "[r]: javascript:alert(1)" in markup.markdown_to_text(MARKDOWN_LINKS[2])


def test_ordered_map_keeps_order_with_local_items_and_raises_at_the_failing_item():
    items = list(range(-20, 20))
    got = list(ordered_map(operator.neg, items, 2, local=lambda x: x % 3 == 0))
    assert got == [Local(x) if x % 3 == 0 else -x for x in items]

    out = []
    with pytest.raises(ValueError):
        for value in ordered_map(int, ["1", "2", "x", "4"], 2):
            out.append(value)
    assert out == [1, 2]


def test_pool_workers_start_with_the_annotate_stage_loaded():
    from lmops.data.langid import detector_built

    # Forked from the fork server, which ran the warm-up once: no worker builds it again.
    assert list(ordered_map(detector_built, range(6), 2)) == [True] * 6


def test_ordered_map_left_early_leaves_no_worker_behind():
    gen = ordered_map(operator.neg, range(1000), 2)
    assert next(gen) == 0
    gen.close()
    assert multiprocessing.active_children() == []


def _markup_folder(root):
    """Markup of every format interleaved with files the main process reads itself."""
    files = {}
    for i in range(12):
        files[f"{i:02d}-a.md"] = f"# Page {i}\n\nSome *text* and [a link](https://x.org/{i}).\n"
        files[f"{i:02d}-b.rst"] = RST_DOCS[i % len(RST_DOCS)]
        files[f"{i:02d}-c.html"] = f"<html><body><h1>H{i}</h1><p>Para {i}.</p></body></html>"
        files[f"{i:02d}-d.jsonl"] = f'{{"id": "j{i}", "text": "line {i}"}}\n{{"broken\n'
        files[f"{i:02d}-e.txt"] = f"Paragraph {i}.\n\nAnother one."
    files["05-z.rst"] = "x" * (markup.RST_LINE_LIMIT + 1)  # a parser error: one error item
    files["06-z.md"] = "<!-- only a comment -->\n"  # no text: one error item
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return sources.expand_sources([str(root)])


def test_pooled_markup_read_yields_the_serial_items_in_order(tmp_path, monkeypatch):
    paths = _markup_folder(tmp_path)
    serial = list(sources.read_sources(paths, workers=1))
    monkeypatch.setattr(sources, "POOL_MARKUP_BYTES", 0)  # pool even this small folder
    monkeypatch.setattr(sources, "GROUP_BYTES", 200)  # and cut it into many tasks
    calls = []

    def spy(fn, items, workers, **kw):
        items = list(items)
        calls.append(sum(1 for g in items if g[0]))  # groups sent to the pool
        return ordered_map(fn, items, workers, **kw)

    monkeypatch.setattr("lmops.data.ordered_pool.ordered_map", spy)
    pooled = list(sources.read_sources(paths, workers=2))
    assert calls and calls[0] > 10
    assert pooled == serial
    assert [i.file for i in serial] == sorted(i.file for i in serial)  # in path order
    errors = {i.file.rsplit("/", 1)[1]: i.error for i in serial if i.error}
    assert errors["05-z.rst"].startswith("markup:unparseable")
    assert errors["06-z.md"] == "markup:no_text"
    assert sum(1 for i in serial if i.file.endswith(".jsonl") and i.error) == 12


def test_a_large_file_between_pooled_markup_still_streams(tmp_path, monkeypatch):
    """Files the main process reads in a pooled read stream as in a serial one."""
    import tracemalloc

    for i in range(4):
        (tmp_path / f"{i}-doc.md").write_text(f"# Page {i}\n\nSome text.\n", encoding="utf-8")
    big = tmp_path / "2-big.txt"
    big.write_text((("lorem ipsum dolor sit amet " * 4 + "\n") * 3 + "\n") * 25_000)
    size = big.stat().st_size
    monkeypatch.setattr(sources, "POOL_MARKUP_BYTES", 0)
    paths = sources.expand_sources([str(tmp_path)])
    tracemalloc.start()
    try:
        n = sum(1 for _ in sources.read_sources(paths, workers=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 25_000 + 4
    assert peak < size / 20, f"peak {peak} bytes for a {size}-byte file"
