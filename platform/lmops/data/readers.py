"""Stream raw items from sources: JSONL (.gz, .zst), Parquet, CSV and plain text.

Readers never raise on a bad record: each yields ``RawItem`` with either a parsed
payload or an ``error`` that becomes a quarantine row naming file and line. A
file-level problem (missing, unreadable, undecodable as a whole) raises
``SourceError`` naming the file. Memory stays bounded: lines, record batches and
paragraphs are streamed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec

from lmops.errors import SourceError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
TEXT_SUFFIXES = (".txt", ".md", ".text")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz"}
KNOWN = JSONL_SUFFIXES + TEXT_SUFFIXES + (".parquet", ".csv")
MAX_RECORD_PREVIEW = 2000


@dataclass(frozen=True)
class RawItem:
    """One record as read: a payload dict, or the reason it could not be parsed."""

    file: str
    line: int
    payload: dict | None
    raw: str
    error: str | None = None


def _split_suffix(path: str) -> tuple[str, str | None]:
    lower = path.lower()
    for ext, comp in COMPRESSIONS.items():
        if lower.endswith(ext):
            return Path(lower[: -len(ext)]).suffix, comp
    return Path(lower).suffix, None


def expand_sources(sources: list[str]) -> list[str]:
    """Files behind each source (folders recursively, sorted); a missing source is an error.

    Inside a folder, files of an unknown format are returned too: the reader turns
    each into one quarantine row (``parse:unknown_format``), so nothing is skipped
    silently. A file named directly must have a known format.
    """
    files: list[str] = []
    for src in sources:
        if "://" in src:
            fs, root = fsspec.core.url_to_fs(src)
            if not fs.exists(root):
                raise SourceError(f"source {src} does not exist; check the URL")
            proto = src.split("://", 1)[0]
            if fs.isdir(root):
                files.extend(f"{proto}://{p}" for p in sorted(fs.find(root)))
            else:
                files.append(src)
            continue
        p = Path(src).expanduser()
        if not p.exists():
            raise SourceError(f"source {src} does not exist; pass an existing file or folder")
        if not os.access(p, os.R_OK):
            raise SourceError(f"source {src} is not readable (permission denied); fix its mode")
        if p.is_dir():
            found = sorted(
                str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
            )
            if not found:
                raise SourceError(f"folder {src} holds no files")
            files.extend(found)
        else:
            if _split_suffix(p.name)[0] not in KNOWN:
                raise SourceError(
                    f"source {src}: unknown format; use one of {', '.join(KNOWN)} "
                    "(optionally .gz/.zst)"
                )
            files.append(str(p))
    return files


def _open_binary(path: str):
    """A buffered binary stream of the file's (decompressed) bytes, line-iterable."""
    _, comp = _split_suffix(path)
    try:
        if comp == "zstd":
            # fsspec's zstd file has no readline; zstandard's reader under a buffer has.
            import zstandard

            raw = fsspec.open(path, "rb").open()
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            return io.BufferedReader(reader, buffer_size=1 << 20)
        return fsspec.open(path, "rb", compression=comp).open()
    except PermissionError:
        raise SourceError(f"{path}: permission denied; fix its mode") from None
    except OSError as e:
        raise SourceError(f"{path}: cannot open ({e})") from None


def _decode(raw: bytes) -> tuple[str | None, str | None]:
    """UTF-8 text (BOM stripped) or an error naming the problem."""
    if b"\x00" in raw:
        return None, "nul_bytes"
    try:
        return raw.decode("utf-8").lstrip("\ufeff"), None
    except UnicodeDecodeError:
        try:
            raw.decode("gbk")
            return None, "encoding:gbk_not_utf8"
        except UnicodeDecodeError:
            return None, "encoding:invalid_utf8"


def _preview(raw: bytes | str) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")
    return text[:MAX_RECORD_PREVIEW]


def read_jsonl(path: str) -> Iterator[RawItem]:
    lineno = 0
    with _open_binary(path) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                text, err = _decode(raw.rstrip(b"\r\n"))
                if err:
                    yield RawItem(path, lineno, None, _preview(raw), err)
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    yield RawItem(path, lineno, None, _preview(text), f"malformed_json:{e.msg}")
                    continue
                if not isinstance(obj, dict):
                    yield RawItem(path, lineno, None, _preview(text), "not_an_object")
                    continue
                yield RawItem(path, lineno, obj, "")
        except (EOFError, OSError) as e:  # truncated gzip / zstd stream
            yield RawItem(path, lineno + 1, None, "", f"truncated_stream:{type(e).__name__}")


def read_text(path: str, mode: str) -> Iterator[RawItem]:
    with _open_binary(path) as fh:
        raw = fh.read()
    text, err = _decode(raw)
    stem = Path(path).name
    if err:
        yield RawItem(path, 1, None, _preview(raw), err)
        return
    if mode == "file":
        yield RawItem(path, 1, {"id": stem, "text": text}, "")
        return
    line, start, para = 1, 1, []
    for row in text.splitlines() + [""]:
        if row.strip():
            if not para:
                start = line
            para.append(row)
        elif para:
            yield RawItem(path, start, {"id": f"{stem}:{start}", "text": "\n".join(para)}, "")
            para = []
        line += 1


def read_parquet(path: str) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fsspec.open(path, "rb").open())
    except Exception as e:  # pyarrow raises several types for non-Parquet bytes
        yield RawItem(path, 0, None, str(e)[:200], "bad_parquet")
        return
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            row += 1
            yield RawItem(path, row, rec, "")


def read_csv(path: str) -> Iterator[RawItem]:
    with _open_binary(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.DictReader(text)
        try:
            for rec in reader:
                line = reader.line_num
                if None in rec:
                    yield RawItem(path, line, None, _preview(str(rec)), "csv:extra_columns")
                    continue
                yield RawItem(path, line, dict(rec), "")
        except UnicodeDecodeError:
            raise SourceError(f"{path}: not UTF-8 text near line {reader.line_num}") from None
        except csv.Error as e:
            raise SourceError(f"{path}: malformed CSV at line {reader.line_num} ({e})") from None


_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 13})


def _looks_binary(path: str) -> bool:
    """An uncompressed text-format file whose first 8 KiB are >10% control bytes.

    A stray NUL in one line is that line's problem (``parse:nul_bytes``); a file
    that is mostly control bytes is not text at all and is quarantined whole.
    """
    if _split_suffix(path)[1] or _split_suffix(path)[0] == ".parquet":
        return False
    with _open_binary(path) as fh:
        head = fh.read(8192)
    return bool(head) and len(head.translate(None, _CONTROL_BYTES)) < 0.9 * len(head)


def read_source_file(path: str, text_mode: str = "paragraph") -> Iterator[RawItem]:
    """Dispatch on the file's suffix; unknown or binary files become one quarantine item."""
    suffix, _ = _split_suffix(path)
    if suffix not in KNOWN:
        return iter([RawItem(path, 0, None, "", f"unknown_format:{suffix or 'none'}")])
    if _looks_binary(path):
        return iter([RawItem(path, 0, None, "", "binary_file")])
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix == ".csv":
        return read_csv(path)
    return read_text(path, text_mode)
