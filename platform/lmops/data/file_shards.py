"""One large JSONL file read by many Ray tasks: byte ranges aligned to lines.

A crawl often arrives as a few multi-GB ``.jsonl`` files; one read task per file would
leave all but a few workers idle and hold a whole file's rows in one task. An
uncompressed UTF-8 JSONL file over :data:`SHARD_BYTES` is cut into ranges of that size.
A range owns the lines that *start* in it: its task seeks to the byte before its start
and skips to the end of that line (Hadoop's ``LineRecordReader`` rule), so every line
is read by exactly one task, whatever the boundaries.

Quarantine rows name their line number, so each range must know how many lines come
before it. A first pass of tasks counts the newlines of each range (``count_newlines``;
only one count per range reaches the driver), and the driver's prefix sums give each
range its first line. The items, line numbers and errors are those of
:func:`lmops.data.readers.read_jsonl` on the whole file (tested range against whole).

Compressed files cannot be entered mid-stream and stay one task each; so do UTF-16/32
files (their newline is not one byte) and files that look binary.
Hand-written: Ray Data's ``read_json`` splits no file either, and it raises on a bad
line where the data standard needs a quarantine row naming it.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec

from lmops.data import readers

SHARD_BYTES = 64 << 20
_CHUNK = 8 << 20


def shardable(path: str) -> bool:
    """An uncompressed JSONL file of UTF-8 (or ASCII) text."""
    suffix, comp = readers._split_suffix(path)
    if comp or suffix not in readers.JSONL_SUFFIXES:
        return False
    try:
        return readers._sniff_codec(path) is None and not readers._looks_binary(path)
    except Exception:  # unreadable: the whole-file reader turns it into a quarantine row
        return False


def _size(path: str) -> int:
    fs, p = fsspec.core.url_to_fs(path)
    return int(fs.size(p))


def plan(files: list[str], shard_bytes: int | None = None) -> list[dict]:
    """Read items: ``{index, path, start, end}``, ``end`` None for a whole file."""
    step = shard_bytes or SHARD_BYTES
    items = []
    for i, path in enumerate(files):
        size = _size(path) if readers._split_suffix(path)[1] is None else 0
        if size > step and shardable(path):
            items += [
                {"index": i, "path": path, "start": b, "end": min(b + step, size)}
                for b in range(0, size, step)
            ]
        else:
            items.append({"index": i, "path": path, "start": 0, "end": None})
    return items


def count_newlines(path: str, start: int, end: int) -> int:
    """Newline bytes in ``[start, end)`` of the file."""
    n = 0
    with fsspec.open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


def _range_lines(path: str, start: int, end: int, newlines_before: int):
    """``readers._lines`` for the lines that start in ``[start, end)``."""
    with fsspec.open(path, "rb") as fh:
        pos = 0
        if start > 0:
            fh.seek(start - 1)
            skipped = fh.readline()  # the rest of the line that started before us
            pos = start - 1 + len(skipped)
            if not skipped.endswith(b"\n"):
                return  # that line runs to the end of the file: not ours
        # The line starting at pos: one after every newline in [0, pos). A skipped
        # newline at start-1 is among ``newlines_before``; one at or after start is not.
        lineno = newlines_before + (1 if pos > start else 0)
        while pos < end:
            raw = fh.readline()
            if not raw:
                return
            lineno += 1
            text, err = readers._decode(raw)
            yield lineno, text, raw, err
            pos += len(raw)


def read_range(path: str, start: int, end: int, newlines_before: int) -> Iterator:
    """The ``RawItem`` of each line that starts in ``[start, end)``."""
    return readers.jsonl_items(path, _range_lines(path, start, end, newlines_before))
