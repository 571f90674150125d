"""Byte ranges of one JSONL file give the whole file's items, line numbers and errors,
wherever the boundaries fall (mid-line, mid-character, on a newline, on a blank line)."""

from __future__ import annotations

import json

import pytest

from lmops.data import file_shards
from lmops.data.readers import read_jsonl


def _messy(path):
    lines = [
        "\ufeff" + json.dumps({"id": "a", "text": "first line after a BOM"}),
        json.dumps({"id": "b", "text": "床前明月光，疑是地上霜。" * 3}, ensure_ascii=False),
        "",
        "{not json",
        json.dumps({"id": "c", "text": "x" * 300}) + "\r",  # a CRLF line
        "[1, 2]",
        '{"id": "z", "text": ',
        "",
        "",
        json.dumps({"id": "d", "text": "举头望明月，低头思故乡。"}, ensure_ascii=False),
    ]
    body = "\n".join(lines).encode("utf-8") + b"\n" + b'{"id": "e", "text": "no newline at end"}'
    body = body.replace(b"{not json", b"{not json \xff\xfe")  # and one invalid UTF-8 line
    path.write_bytes(body)
    return str(path)


def _by_ranges(path, step):
    items = file_shards.plan([path], shard_bytes=step)
    out, before = [], 0
    for it in items:
        out += list(file_shards.read_range(path, it["start"], it["end"], before))
        before += file_shards.count_newlines(path, it["start"], it["end"])
    return items, out


@pytest.mark.parametrize("step", [1, 2, 7, 13, 64, 100, 333])
def test_ranges_read_what_the_whole_file_reads(tmp_path, step):
    path = _messy(tmp_path / "messy.jsonl")
    whole = list(read_jsonl(path))
    items, ranged = _by_ranges(path, step)
    assert len(items) > 1
    assert ranged == whole
    errors = {(i.line, i.error) for i in whole if i.error}
    assert errors == {(4, "encoding:invalid_utf8"), (6, "not_an_object"),
                      (7, "malformed_json:Expecting value")}  # fmt: skip
    assert [i.line for i in whole if not i.error] == [1, 2, 5, 10, 11]


def test_only_uncompressed_utf8_jsonl_is_cut(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"id": str(i), "text": "t"}) + "\n" for i in range(500)))
    utf16 = tmp_path / "wide.jsonl"
    utf16.write_text(big.read_text(), encoding="utf-16")
    txt = tmp_path / "notes.txt"
    txt.write_text("a paragraph\n" * 500)
    plan = file_shards.plan([str(big), str(utf16), str(txt)], shard_bytes=1000)
    cut = {it["path"] for it in plan if it["end"] is not None}
    assert cut == {str(big)}
    assert [it["index"] for it in plan if it["end"] is None] == [1, 2]
