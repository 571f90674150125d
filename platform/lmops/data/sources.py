"""Which files a list of sources names, and reading them in order.

:func:`expand_sources` turns files, folders and fsspec URLs into the sorted list of
files an ingest reads and hashes; :func:`read_sources` streams their items, parsing
large runs of markup in a process pool. Each file's format is parsed by
:mod:`lmops.data.readers`.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import fsspec

from lmops.data.readers import KNOWN, MARKUP_SUFFIXES, RawItem, _split_suffix, read_source_file
from lmops.errors import SourceError


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


def read_file_items(path: str, text_mode: str, code_blocks: str) -> Iterator[RawItem]:
    """The items of one file; a file that fails to read ends in one ``parse:unreadable``
    item naming the error, after the items read before it (never a traceback)."""
    try:
        yield from read_source_file(path, text_mode, code_blocks=code_blocks)
    except (OSError, EOFError, zlib.error) as e:  # zlib.error: a corrupt .gz stream
        yield RawItem(path, 0, None, f"{type(e).__name__}: {e}"[:500], "unreadable")


def _stream(files: list[str], text_mode: str, code_blocks: str) -> Iterator[RawItem]:
    for p in files:
        yield from read_file_items(p, text_mode, code_blocks)


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
