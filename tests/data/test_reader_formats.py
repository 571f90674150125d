"""Reader formats: Markdown, reST and HTML through their parsers, UTF-16/32 files with a
BOM, and plain text streamed paragraph by paragraph."""

import codecs
import gzip
import json
import tracemalloc

import pytest

from lmops.data.readers import read_source_file

MARKDOWN = """# Install guide

Run `pip install lmops` first, then read [the docs](https://example.com/docs).
It takes **one** minute.

## Steps

- create a venv
- install the package

```python
import lmops
```

    indented = True

Done.
"""
MARKDOWN_PROSE = (
    "Install guide\n\n"
    "Run pip install lmops first, then read the docs.\nIt takes one minute.\n\n"
    "Steps\n\n"
    "- create a venv\n- install the package"
)

RST = """=============
Install guide
=============

Run ``pip install lmops`` first; see :ref:`the setup page <setup>`.

.. note::

   Needs Python 3.11.

Example::

    import lmops

Done.
"""
RST_PROSE = (
    "Install guide\n\nRun pip install lmops first; see the setup page.\n\n"
    "Needs Python 3.11.\n\nExample:"
)

HTML = """<!DOCTYPE html>
<html><head><title>Page</title>
<style>body { color: red; }</style>
<script>var secret = "never in the text";</script></head>
<body>
<h1>Release notes</h1>
<p>The <code>fit()</code> call now streams, see <a href="/docs">the docs</a>.</p>
<script>trackVisitor();</script>
<ul><li>faster reads</li><li>fewer copies</li></ul>
<pre>for x in range(3):
    print(x)</pre>
<p>Thanks &amp; goodbye.</p>
</body></html>
"""


def read_one(path, **kw):
    (item,) = list(read_source_file(str(path), **kw))
    return item


def test_markdown_keeps_prose_and_code_blocks_by_choice(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    keep = read_one(path)
    assert keep.error is None
    assert keep.payload == {
        "id": keep.file,
        "text": MARKDOWN_PROSE + "\n\nimport lmops\n\nindented = True\n\nDone.",
        "meta": {"format": "markdown"},
    }
    assert read_one(path, code_blocks="drop").payload["text"] == MARKDOWN_PROSE + "\n\nDone."


def test_rst_keeps_prose_and_literal_blocks_by_choice(tmp_path):
    path = tmp_path / "guide.rst"
    path.write_text(RST)
    keep = read_one(path)
    assert keep.payload["meta"] == {"format": "rst"}
    assert keep.payload["text"] == RST_PROSE + "\n\nimport lmops\n\nDone."
    assert read_one(path, code_blocks="drop").payload["text"] == RST_PROSE + "\n\nDone."


def test_html_never_keeps_script_or_style_and_pre_by_choice(tmp_path):
    path = tmp_path / "notes.html"
    path.write_text(HTML)
    keep, drop = read_one(path).payload, read_one(path, code_blocks="drop").payload
    assert keep["meta"] == {"format": "html"}
    for text in (keep["text"], drop["text"]):
        assert text.startswith("Release notes\n\nThe fit() call now streams, see the docs.\n\n")
        assert "faster reads\n" in text and text.endswith("\n\nThanks & goodbye.")
        assert not any(s in text for s in ("secret", "trackVisitor", "color", "<"))
    assert "for x in range(3):\n    print(x)" in keep["text"]
    assert "range" not in drop["text"]


def test_compressed_markdown_reads_like_plain(tmp_path):
    path = tmp_path / "guide.md.gz"
    path.write_bytes(gzip.compress(MARKDOWN.encode()))
    assert read_one(path, code_blocks="drop").payload["text"] == MARKDOWN_PROSE + "\n\nDone."


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "markup:no_text"),
        ("scripts.html", b"<html><script>x()</script><style>p{}</style></html>", "markup:no_text"),
        ("include.rst", b".. include:: /etc/passwd\n", "markup:no_text"),
        ("long.rst", b"x" * 10_001 + b"\n", "markup:unparseable:line_over_10000_chars"),
        (
            "deep.rst",
            "".join(" " * i + f"- item {i}\n\n" for i in range(0, 2000, 2)).encode(),
            "markup:unparseable:RecursionError",
        ),
        ("gbk.md", "# 标题\n\n数据标准让每一条记录都有来源".encode("gbk"), "encoding:gbk_not_utf8"),
    ],
)
def test_markup_without_text_is_one_quarantine_item(tmp_path, capfd, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    item = read_one(path)
    assert (item.payload, item.error) == (None, reason)
    assert capfd.readouterr().err == ""  # docutils' reports are silenced


def test_html_not_in_utf8_is_decoded_by_its_meta_charset(tmp_path):
    path = tmp_path / "cafe.html"
    html = "<html><head><meta charset='windows-1252'></head><body><p>Café crème</p></body></html>"
    path.write_bytes(html.encode("cp1252"))
    assert read_one(path).payload["text"] == "Café crème"


TEXT = "Première ligne, 中文.\nSecond line.\n\nNext paragraph."
BOMS = [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)]
BOMS += [("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE)]


@pytest.mark.parametrize(("encoding", "bom"), BOMS)
def test_utf16_and_utf32_with_bom_are_decoded(tmp_path, encoding, bom):
    def write(name, text):
        (tmp_path / name).write_bytes(bom + text.encode(encoding))
        return tmp_path / name

    txt = [i.payload["text"] for i in read_source_file(str(write("a.txt", TEXT)))]
    assert txt == ["Première ligne, 中文.\nSecond line.", "Next paragraph."]
    rows = [{"id": "x1", "text": "Première ligne, 中文."}, {"id": "x2", "text": "Second"}]
    jsonl = write("a.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows))
    assert [i.payload for i in read_source_file(str(jsonl))] == rows
    csv = write("a.csv", "id,text\nc1,Première ligne\n")
    assert [i.payload for i in read_source_file(str(csv))] == [
        {"id": "c1", "text": "Première ligne"}
    ]
    md = write("a.md", "# Titre\n\nPremière ligne, 中文.\n")
    assert read_one(md).payload["text"] == "Titre\n\nPremière ligne, 中文."


@pytest.mark.parametrize("name", ["b.txt", "b.md", "b.jsonl"])
def test_binary_file_is_still_rejected(tmp_path, name):
    (tmp_path / name).write_bytes(bytes(range(256)) * 64)
    assert read_one(tmp_path / name).error == "binary_file"


def test_bad_line_spoils_only_its_paragraph(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"good one\n\nbad \xff line\nmore\n\ngood two\n")
    items = list(read_source_file(str(path)))
    assert [(i.line, i.error) for i in items] == [
        (1, None),
        (3, "encoding:invalid_utf8"),
        (6, None),
    ]
    assert items[2].payload == {"id": f"{items[2].file}:6", "text": "good two"}


def test_paragraph_mode_streams(tmp_path):
    """Peak memory while reading every paragraph stays far below the file's size."""
    path = tmp_path / "big.txt"
    para = ("lorem ipsum dolor sit amet " * 4 + "\n") * 3 + "\n"
    path.write_text(para * 25_000)
    size = path.stat().st_size
    assert size > 8_000_000
    tracemalloc.start()
    try:
        n = sum(1 for _ in read_source_file(str(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 25_000
    assert peak < size / 20, f"peak {peak} bytes for a {size}-byte file"


def test_file_mode_stops_at_the_cap(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("a line of text\n" * 100_000)
    whole = read_one(path, text_mode="file")
    assert whole.payload["text"] == "a line of text\n" * 100_000
    capped = read_one(path, text_mode="file", max_chars=1000)
    assert capped.error == "too_long:>1000"
    assert capped.line == 67  # the line that passed 1,000 chars: reading stopped there
    assert read_one(tmp_path / "big.txt", text_mode="file", max_chars=2_000_000).error is None


def test_code_blocks_must_be_keep_or_drop(tmp_path):
    (tmp_path / "a.md").write_text("# A\n")
    with pytest.raises(ValueError, match="code_blocks"):
        read_source_file(str(tmp_path / "a.md"), code_blocks="strip")
