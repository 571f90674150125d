"""A real offline corpus: the documentation files already installed on this machine.

    python -m lmops.corpus.installed_docs OUT [--min-mb 20]

Nothing is downloaded. Markdown, reST and HTML files are collected from the venv's
and the base interpreter's site-packages, Python's own docs (if installed),
``/usr/share/doc``, ``/usr/local/share/doc`` and the rest of ``/usr/share`` (CMake's
reST help, for one), in that order and in sorted path order within each root, until
``min_bytes`` of text is reached. Only if every markup file together is smaller than
``min_bytes`` are ``.txt`` files inside documentation folders (a path part named
``doc``, ``docs`` or ``help``) added; ``.txt`` elsewhere is too often data (test
fixtures, Unicode tables). Compressed docs (``*.md.gz``) are skipped.

Skipped: files under ``min_file_bytes`` or over ``max_file_bytes``, licence texts (one
licence repeated across hundreds of packages is not documentation), symlinks, files that
are not UTF-8, and exact duplicates (by content hash, first path wins).

Two forms are written into ``out_dir``:

* ``raw/<package>/<path>``: the files as they are, suffix kept, for markup readers.
* ``docs.jsonl``: ``{"id", "text", "source", "license"}`` per file, the same order.
  ``id`` is the file's path under ``raw/``; ``source`` names the root. The text is
  the file's content with a BOM dropped and CRLF/CR turned into LF, nothing more:
  markup stays in, so every tool that reads ``docs.jsonl`` does the same work on the
  same text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PathDistribution
from pathlib import Path

MARKUP_SUFFIXES = (".md", ".markdown", ".rst", ".rest", ".html", ".htm")
TEXT_SUFFIXES = (".txt",)
DOC_FOLDERS = frozenset({"doc", "docs", "help"})
_LICENCE_NAME = re.compile(r"^(licen[cs]e|copying|copyright|notice)", re.IGNORECASE)
_SKIP_DIRS = frozenset({"__pycache__", "node_modules"})


@dataclass(frozen=True)
class Root:
    """A folder to collect from; ``label`` becomes each record's ``source``."""

    label: str
    path: Path
    exclude: tuple[str, ...] = ()  # top-level names another root covers


@dataclass
class BuildReport:
    """What one build wrote and what it skipped, with reasons."""

    out_dir: Path
    min_bytes: int
    files: int = 0
    text_bytes: int = 0
    by_suffix: Counter = field(default_factory=Counter)  # suffix -> bytes
    by_source: Counter = field(default_factory=Counter)  # root label -> bytes
    skipped: Counter = field(default_factory=Counter)  # reason -> files
    used_text_files: bool = False

    @property
    def short(self) -> bool:
        return self.text_bytes < self.min_bytes

    def lines(self) -> list[str]:
        mb = lambda b: f"{b / 1e6:.2f} MB"  # noqa: E731
        out = [
            f"wrote {self.files} documents, {mb(self.text_bytes)} of text, to "
            f"{self.out_dir / 'docs.jsonl'} and {self.out_dir / 'raw'}/",
            "  by suffix: " + ", ".join(f"{k} {mb(v)}" for k, v in self.by_suffix.most_common()),
            "  by source: " + ", ".join(f"{k} {mb(v)}" for k, v in self.by_source.most_common()),
            "  skipped files: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"),
        ]
        if self.used_text_files:
            out.append("  markup alone was short of the target: .txt from doc folders added")
        if self.short:
            out.append(
                f"  SHORT: this machine holds only {mb(self.text_bytes)} of such docs "
                f"({mb(self.min_bytes)} asked for)"
            )
        return out


def default_roots() -> list[Root]:
    """The documentation roots of this machine, in collection order; missing ones dropped."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    roots = [
        Root("site-packages", Path(sysconfig.get_paths()["purelib"])),
        Root("base-site-packages", Path(sysconfig.get_paths(vars=base)["purelib"])),
        Root("python-docs", Path(sys.base_prefix) / "share" / "doc"),
        Root("usr-share-doc", Path("/usr/share/doc")),
        Root("usr-local-share-doc", Path("/usr/local/share/doc")),
        Root("usr-share", Path("/usr/share"), exclude=("doc",)),
    ]
    seen, out = set(), []
    for r in roots:
        key = r.path.resolve() if r.path.is_dir() else None
        if key and key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _walk(root: Root) -> Iterator[Path]:
    """Regular files under ``root`` in sorted order, hidden and cache folders skipped."""
    for dirpath, dirnames, filenames in os.walk(root.path):
        top = Path(dirpath) == root.path
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and not (top and d in root.exclude)
        )
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _package(rel: Path) -> tuple[str, Path]:
    """(package name, path under it) for a path relative to its root.

    ``numpy-2.4.6.dist-info/x`` belongs to ``numpy`` and keeps its folder, so it cannot
    clash with ``numpy/x``; a file directly in the root goes under ``_top``.
    """
    parts = rel.parts
    if len(parts) == 1:
        return "_top", rel
    first = parts[0]
    if first.endswith((".dist-info", ".egg-info")):
        return first.split("-")[0], rel
    return first, Path(*parts[1:])


def _licences(root: Root) -> dict[str, str]:
    """Top-level name -> licence, from site-packages metadata or Debian copyright files."""
    out: dict[str, str] = {}
    for info in sorted(root.path.glob("*.dist-info")):
        try:
            dist = PathDistribution(info)
            meta = dist.metadata
            lic = meta.get("License-Expression") or next(
                (
                    c.split("::")[-1].strip()
                    for c in meta.get_all("Classifier") or []
                    if c.startswith("License ::") and "OSI Approved ::" in c
                ),
                None,
            )
            lic = lic or (meta.get("License") if len(meta.get("License") or "") <= 40 else None)
            tops = {f.parts[0] for f in dist.files or [] if f.parts}
        except (OSError, ValueError, KeyError):
            continue
        for top in tops | {info.name}:
            out.setdefault(top, lic or "unknown")
        out.setdefault(info.name.split("-")[0], lic or "unknown")
    for copyright_file in sorted(root.path.glob("*/copyright")):
        try:
            text = copyright_file.read_text("utf-8", errors="replace")
        except OSError:
            continue
        # Only machine-readable (DEP-5) files name a licence; free prose is not guessed at.
        m = re.search(r"^License:[ \t]*(\S[^\n]{0,39})$", text, re.MULTILINE)
        dep5 = text.startswith("Format:") and m
        out.setdefault(copyright_file.parent.name, m.group(1).strip() if dep5 else "unknown")
    return out


def _read_text(path: Path) -> str | None:
    """The light handling of the JSONL form: BOM dropped, line ends made LF."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _candidates(
    roots: list[Root], suffixes: tuple[str, ...], doc_folders_only: bool
) -> Iterator[tuple[Root, Path]]:
    for root in roots:
        for path in _walk(root):
            if path.suffix.lower() not in suffixes:
                continue
            rel = path.relative_to(root.path)
            if doc_folders_only and not DOC_FOLDERS & {p.lower() for p in rel.parts[:-1]}:
                continue
            yield root, path


def build_installed_docs(
    out_dir: Path,
    min_bytes: int = 20_000_000,
    roots: list[Root] | None = None,
    min_file_bytes: int = 200,
    max_file_bytes: int = 2_000_000,
) -> BuildReport:
    """Collect installed docs until ``min_bytes`` of text; write ``raw/`` and ``docs.jsonl``.

    Deterministic for a given machine: the same roots give the same bytes. If the
    machine holds less than ``min_bytes``, everything found is written and
    ``report.short`` is true.
    """
    out_dir = Path(out_dir)
    roots = default_roots() if roots is None else roots
    report = BuildReport(out_dir, min_bytes)
    raw_dir = out_dir / "raw"
    shutil.rmtree(raw_dir, ignore_errors=True)  # a smaller rebuild must not leave stale files
    raw_dir.mkdir(parents=True)
    licences: dict[str, dict[str, str]] = {}  # per root, read when the root is first used
    seen_hashes: set[bytes] = set()
    used_paths: set[str] = set()
    tmp = out_dir / "docs.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        passes = ((MARKUP_SUFFIXES, False), (TEXT_SUFFIXES, True))
        for pass_no, (suffixes, doc_only) in enumerate(passes):
            if report.text_bytes >= min_bytes:
                break
            report.used_text_files = pass_no > 0
            for root, path in _candidates(roots, suffixes, doc_only):
                if report.text_bytes >= min_bytes:
                    break
                why = _skip_reason(path, min_file_bytes, max_file_bytes)
                text = None if why else _read_text(path)
                if why is None and text is None:
                    why = "not_utf8_or_unreadable"
                if why is None:
                    digest = hashlib.sha1(text.encode("utf-8")).digest()
                    why = "duplicate" if digest in seen_hashes else None
                    seen_hashes.add(digest)
                if why is None and not text.strip():
                    why = "blank"
                if why:
                    report.skipped[why] += 1
                    continue
                package, sub = _package(path.relative_to(root.path))
                doc_id = f"{package}/{sub.as_posix()}"
                if doc_id in used_paths:  # same package and path in two roots
                    package = f"{package}@{root.label}"
                    doc_id = f"{package}/{sub.as_posix()}"
                used_paths.add(doc_id)
                dest = raw_dir / doc_id
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                if root.label not in licences:
                    licences[root.label] = _licences(root)
                lic = licences[root.label].get(path.relative_to(root.path).parts[0], "unknown")
                rec = {"id": doc_id, "text": text, "source": root.label, "license": lic}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                size = len(text.encode("utf-8"))
                report.files += 1
                report.text_bytes += size
                report.by_suffix[path.suffix.lower()] += size
                report.by_source[root.label] += size
    os.replace(tmp, out_dir / "docs.jsonl")
    return report


def _skip_reason(path: Path, min_file_bytes: int, max_file_bytes: int) -> str | None:
    if _LICENCE_NAME.match(path.name):
        return "licence"
    if path.is_symlink():
        return "symlink"
    try:
        size = path.stat().st_size
    except OSError:
        return "unreadable"
    if size < min_file_bytes:
        return "too_small"
    if size > max_file_bytes:
        return "too_large"
    if not os.access(path, os.R_OK):
        return "unreadable"
    return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m lmops.corpus.installed_docs", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("out", type=Path, help="output folder (raw/ and docs.jsonl)")
    ap.add_argument("--min-mb", type=float, default=20.0, help="stop once this much text")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        ap.error(f"{args.out} is a file; pass a folder (it is created if missing)")
    report = build_installed_docs(args.out, int(args.min_mb * 1e6))
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
