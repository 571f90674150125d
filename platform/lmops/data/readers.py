"""Stream raw items from sources: JSONL, Parquet, CSV, plain text, Markdown, reST and HTML.

Readers never raise on a bad record: each yields ``RawItem`` with either a parsed
payload or an ``error`` that becomes a quarantine row naming file and line. A
file-level problem (missing, unreadable, a CSV undecodable as a whole) raises
``SourceError`` naming the file. Memory stays bounded: lines, record batches and
paragraphs are streamed; a file read as one document (text in file mode, markup) is
read line by line and given up at ``max_chars`` when a cap is passed. Text is UTF-8,
or UTF-16 / UTF-32 with a byte-order mark. Any format may be compressed
(.gz, .zst, .bz2, .xz).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import json
import os
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
    for lineno, text, raw, err in _lines(path):
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


# Markup is parsed in pure Python (docutils, markdown-it-py) at about 1 MB/s on a core,
# tens of times slower than JSONL is read. From this many bytes of it (several seconds
# of parsing) the read parses it in a process pool, which costs about a second to start.
POOL_MARKUP_BYTES = 4 << 20
# Markup bytes per pool task: a reST page is a few KB, so a task per file would be
# mostly IPC; a few hundred KB is a fraction of a second of parsing.
GROUP_BYTES = 256 << 10


def _size(path: str) -> int:
    """The file's size in bytes, 0 when it cannot be read (its reader will say why)."""
    try:
        if "://" in path:
            fs, root = fsspec.core.url_to_fs(path)
            return int(fs.size(root) or 0)
        return os.path.getsize(path)
    except OSError:
        return 0


def _stream(files: list[str], text_mode: str, code_blocks: str) -> Iterator[RawItem]:
    for p in files:
        yield from read_source_file(p, text_mode, code_blocks=code_blocks)


def _read_group(group: tuple[bool, list[str]], text_mode: str, code_blocks: str) -> list[RawItem]:
    """A pool task: the items of one group of files, as a list (results are pickled)."""
    return list(_stream(group[1], text_mode, code_blocks))


def read_sources(
    paths: list[str],
    text_mode: str = "paragraph",
    *,
    code_blocks: str = "keep",
    workers: int = 1,
) -> Iterator[RawItem]:
    """:func:`read_source_file` over ``paths``, in order; markup parsed by ``workers`` processes.

    With ``workers`` > 1 and at least :data:`POOL_MARKUP_BYTES` of markup files, runs of
    consecutive markup files (:data:`GROUP_BYTES` each) are parsed in a process pool
    while this process streams the other files itself; the items are the same, in the
    same order, as a serial read.
    """
    if workers <= 1:
        yield from _stream(paths, text_mode, code_blocks)
        return
    groups: list[tuple[bool, list[str]]] = []  # (parsed in the pool, files)
    markup_bytes = group_bytes = 0
    for p in paths:
        pooled = _split_suffix(p)[0] in MARKUP_SUFFIXES
        size = _size(p) if pooled else 0
        markup_bytes += size
        if pooled and groups and groups[-1][0] and group_bytes < GROUP_BYTES:
            groups[-1][1].append(p)
            group_bytes += size
        else:
            groups.append((pooled, [p]))
            group_bytes = size
    if markup_bytes < POOL_MARKUP_BYTES:
        yield from _stream(paths, text_mode, code_blocks)
        return
    from lmops.data.ordered_pool import Local, ordered_map

    read = functools.partial(_read_group, text_mode=text_mode, code_blocks=code_blocks)
    for out in ordered_map(read, groups, workers, local=lambda g: not g[0]):
        # A file read here (JSONL, text...) streams, however large; a pooled group is a
        # list of at most GROUP_BYTES of markup documents.
        yield from _stream(out.item[1], text_mode, code_blocks) if isinstance(out, Local) else out
