"""Parse one source file into raw items: JSONL, Parquet, CSV, plain text, Markdown, reST, HTML.

Readers never raise on a bad record: each yields ``RawItem`` with either a parsed
payload or an ``error`` that becomes a quarantine row naming file and line. A
file-level problem (missing, unreadable, a CSV undecodable as a whole) raises
``SourceError`` naming the file. Memory stays bounded: lines, record batches and
paragraphs are streamed; a file read as one document (text in file mode, markup) is
read line by line and given up at ``max_chars`` when a cap is passed. Text is UTF-8,
or UTF-16 / UTF-32 with a byte-order mark. Any format may be compressed
(.gz, .zst, .bz2, .xz). Which files a source names, and reading many in order, is
:mod:`lmops.data.sources`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec

from lmops.data import markup
from lmops.errors import SourceError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text")
MARKUP_SUFFIXES = tuple(markup.FORMATS)
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz"}
KNOWN = JSONL_SUFFIXES + TEXT_SUFFIXES + MARKUP_SUFFIXES + (".parquet", ".csv")
MAX_RECORD_PREVIEW = 2000
# UTF-32 LE's mark starts with UTF-16 LE's (FF FE), so it is tried first. Python's
# "utf-16" / "utf-32" codecs read the mark for the byte order and drop it.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


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


def _bom_codec(head: bytes) -> str | None:
    return next((codec for bom, codec in BOMS if head.startswith(bom)), None)


def _sniff_codec(path: str) -> str | None:
    """``utf-16`` / ``utf-32`` when the (decompressed) file opens with that BOM, else None."""
    try:
        with _open_binary(path) as fh:
            return _bom_codec(fh.read(4))
    except (EOFError, OSError):  # a broken stream: the reader that follows reports it
        return None


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


_Line = tuple[int, str | None, bytes | str, str | None]


def _lines(path: str) -> Iterator[_Line]:
    """``(line number, text, raw, error)`` per line, line end kept; text is None on error.

    UTF-8 is decoded line by line, so a bad line is that line's problem. A file with a
    UTF-16/32 BOM is decoded as one stream: an undecodable stretch ends the file with
    one error, as does a truncated compressed stream.
    """
    codec = _sniff_codec(path)
    lineno = 0
    with _open_binary(path) as fh:
        try:
            if codec is None:
                for lineno, raw in enumerate(fh, start=1):
                    text, err = _decode(raw)
                    yield lineno, text, raw, err
                return
            stream = io.TextIOWrapper(fh, encoding=codec, errors="strict", newline="\n")
            for lineno, text in enumerate(stream, start=1):
                nul = "\x00" in text
                yield lineno, None if nul else text, text, "nul_bytes" if nul else None
        except UnicodeDecodeError:  # only the BOM branch decodes as a stream
            yield lineno + 1, None, "", f"encoding:invalid_{codec}"
        except (EOFError, OSError) as e:  # truncated gzip / zstd stream
            yield lineno + 1, None, "", f"truncated_stream:{type(e).__name__}"


def read_jsonl(path: str) -> Iterator[RawItem]:
    return jsonl_items(path, _lines(path))


def jsonl_items(path: str, lines: Iterator[_Line]) -> Iterator[RawItem]:
    """The items of JSONL ``lines`` (a whole file's, or a byte range's: ``file_shards``)."""
    for lineno, text, raw, err in lines:
        if err:
            yield RawItem(path, lineno, None, _preview(raw), err)
            continue
        if not raw.strip():
            continue
        text = text.rstrip("\r\n")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield RawItem(path, lineno, None, _preview(text), f"malformed_json:{e.msg}")
            continue
        if not isinstance(obj, dict):
            yield RawItem(path, lineno, None, _preview(text), "not_an_object")
            continue
        yield RawItem(path, lineno, obj, "")


def _paragraphs(path: str) -> Iterator[RawItem]:
    """Each blank-line paragraph as soon as it ends; a bad line spoils its paragraph.

    Rows are counted as ``str.splitlines`` counts them (\r, U+2028 and the like break
    rows too), so a paragraph's id and line are those of its first row.
    """
    # Ids carry the whole path: two folders' README.txt must not collide as duplicate ids.
    stem = path
    row_no, start, para, bad = 0, 0, [], None  # start: first row of the open paragraph

    def item() -> RawItem:
        if bad:
            return RawItem(path, start, None, bad[1], bad[0])
        return RawItem(path, start, {"id": f"{stem}:{start}", "text": "\n".join(para)}, "")

    for _, text, raw, err in _lines(path):
        if err:
            row_no += 1
            start = start or row_no
            bad, para = bad or (err, _preview(raw)), []
            continue
        for row in text.splitlines() or [""]:
            row_no += 1
            if row.strip():
                start = start or row_no
                if not bad:
                    para.append(row)
            elif start:
                yield item()
                start, para, bad = 0, [], None
    if start:
        yield item()


def _read_document(path: str, max_chars: int | None) -> tuple[str | None, int, str, str | None]:
    """``(text, line, preview, error)``: the whole file, or the first problem and its line."""
    parts, size = [], 0
    with contextlib.closing(_lines(path)) as lines:
        for lineno, text, raw, err in lines:
            if err:
                return None, lineno, _preview(raw), err
            size += len(text)
            if max_chars is not None and size > max_chars:
                return None, lineno, _preview("".join(parts)), f"too_long:>{max_chars}"
            parts.append(text)
    return "".join(parts), 1, "", None


def read_text(
    path: str, mode: str = "paragraph", max_chars: int | None = None
) -> Iterator[RawItem]:
    """Paragraphs (streamed), or in ``file`` mode the whole file as one document."""
    if mode != "file":
        yield from _paragraphs(path)
        return
    text, line, preview, err = _read_document(path, max_chars)
    if err:
        yield RawItem(path, line, None, preview, err)
        return
    yield RawItem(path, 1, {"id": path, "text": text}, "")


def _read_html_bytes(path: str, max_chars: int | None) -> tuple[bytes | None, str | None]:
    # A character takes at most 4 bytes in any encoding HTML is written in, so more
    # than 4 * max_chars bytes holds more than max_chars characters.
    limit = -1 if max_chars is None else 4 * max_chars + 1
    try:
        with _open_binary(path) as fh:
            raw = fh.read(limit)
    except (EOFError, OSError) as e:
        return None, f"truncated_stream:{type(e).__name__}"
    if max_chars is not None and len(raw) > 4 * max_chars:
        return None, f"too_long:>{max_chars}"
    return raw, None


def read_markup(
    path: str, code_blocks: markup.CodeBlocks = "keep", max_chars: int | None = None
) -> Iterator[RawItem]:
    """One document per Markdown / reST / HTML file, as plain text with ``meta.format``."""
    suffix = _split_suffix(path)[0]
    fmt = markup.FORMATS[suffix]
    source, line, preview, err = _read_document(path, max_chars)
    if fmt == "html" and err and err.startswith("encoding:"):
        # Not UTF-8: resiliparse's detector picks the encoding (a <meta charset> first).
        source, err = _read_html_bytes(path, max_chars)
    if err:
        yield RawItem(path, line, None, preview, err)
        return
    try:
        text = markup.to_text(source, suffix, code_blocks)
    except markup.MarkupError as e:
        text, err = None, f"markup:unparseable:{e}"
    except Exception as e:  # the parsers raise assorted types (RecursionError when too deep)
        text, err = None, f"markup:unparseable:{type(e).__name__}"
    if text is not None and not text.strip():
        err = "markup:no_text"
    if err:
        yield RawItem(path, 1, None, _preview(source), err)
        return
    yield RawItem(path, 1, {"id": path, "text": text, "meta": {"format": fmt}}, "")


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
    codec = _sniff_codec(path) or "utf-8-sig"
    with _open_binary(path) as fh:
        text = io.TextIOWrapper(fh, encoding=codec, errors="strict", newline="")
        reader = csv.DictReader(text)
        try:
            for rec in reader:
                line = reader.line_num
                if None in rec:
                    yield RawItem(path, line, None, _preview(str(rec)), "csv:extra_columns")
                    continue
                yield RawItem(path, line, dict(rec), "")
        except UnicodeDecodeError:
            name = "UTF-8" if codec == "utf-8-sig" else codec.upper()
            raise SourceError(f"{path}: not {name} text near line {reader.line_num}") from None
        except csv.Error as e:
            raise SourceError(f"{path}: malformed CSV at line {reader.line_num} ({e})") from None


_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 13})


def _looks_binary(path: str) -> bool:
    """An uncompressed text-format file whose first 8 KiB are >10% control bytes.

    A stray NUL in one line is that line's problem (``parse:nul_bytes``); a file
    that is mostly control bytes is not text at all and is quarantined whole. UTF-16
    and UTF-32 are mostly NUL bytes in Latin scripts, so a file opening with their
    BOM is taken as text.
    """
    if _split_suffix(path)[1] or _split_suffix(path)[0] == ".parquet":
        return False
    with _open_binary(path) as fh:
        head = fh.read(8192)
    if _bom_codec(head):
        return False
    return bool(head) and len(head.translate(None, _CONTROL_BYTES)) < 0.9 * len(head)


def read_source_file(
    path: str,
    text_mode: str = "paragraph",
    *,
    code_blocks: str = "keep",
    max_chars: int | None = None,
) -> Iterator[RawItem]:
    """Dispatch on the file's suffix; unknown or binary files become one quarantine item.

    ``code_blocks`` (``keep`` / ``drop``) applies to markup; ``max_chars`` caps a file
    read as one document (text in ``file`` mode, markup), None reads it whole.
    """
    if code_blocks not in ("keep", "drop"):
        raise ValueError(f"code_blocks must be 'keep' or 'drop', not {code_blocks!r}")
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
    if suffix in MARKUP_SUFFIXES:
        return read_markup(path, code_blocks, max_chars)
    return read_text(path, text_mode, max_chars)
