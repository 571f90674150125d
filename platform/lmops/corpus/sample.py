"""Build the sample corpus that ``lmops run`` uses when no source is given.

Nothing is downloaded. English text is harvested from the docstrings of the
installed Python standard library (PSF licence), read with ``ast`` so that no
module is imported. Chinese and English prose comes from ``bilingual.jsonl``,
written for this project. A third file holds deliberately bad records, so the
quarantine is visible in every demo.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

BILINGUAL = Path(__file__).with_name("bilingual.jsonl")
MIN_DOCSTRING_CHARS = 200
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo"}


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return files


def _docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """(name@line, docstring) for the module and each class and function.

    The line number keeps ids unique: one module may define ``__init__`` many times.
    """
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return
    yield "<module>", ast.get_docstring(tree) or ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{node.name}@{node.lineno}", ast.get_docstring(node) or ""


def stdlib_docstring_records() -> Iterator[dict]:
    """Schema-v1 records, one per docstring of at least ``MIN_DOCSTRING_CHARS``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for path in _stdlib_files():
        rel = path.relative_to(root).as_posix()
        for name, doc in _docstrings(path):
            if len(doc) < MIN_DOCSTRING_CHARS:
                continue
            yield {
                "id": f"py{version}:{rel}:{name}",
                "text": doc,
                "source": "python-stdlib-docstrings",
                "lang": "en",
                "license": "PSF-2.0",
                "meta": {"file": rel, "object": name},
            }


def bad_record_lines() -> list[str]:
    """Raw JSONL lines that the data standard must quarantine, each for its own reason."""
    good = {"source": "lmops-bad-examples", "lang": "en", "license": "CC0-1.0", "meta": {}}
    rows = [
        '{"id": "bad-malformed", "text": "this line is not valid JSON',
        json.dumps({**good, "id": "bad-missing-text"}),
        json.dumps({**good, "id": "bad-empty", "text": "   \n\t "}),
        json.dumps({**good, "id": "bad-not-string", "text": 12345}),
        json.dumps({**good, "id": "bad-too-short", "text": "Too short."}),
        json.dumps({**good, "id": "bad-unknown-field", "text": "x" * 40, "colour": "red"}),
        "[1, 2, 3]",
        json.dumps(
            {
                **good,
                "id": "bad-dup-1",
                "text": "This sentence appears twice in the "
                "sample corpus so that exact deduplication has something to remove.",
            }
        ),
        json.dumps(
            {
                **good,
                "id": "bad-dup-2",
                "text": "This sentence appears twice in the "
                "sample corpus so that exact deduplication has something to remove.",
            }
        ),
    ]
    return rows


def write_sample_corpus(dest: Path) -> list[Path]:
    """Write the three sample files into ``dest`` (idempotent) and return their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    docs = dest / f"en_stdlib_docstrings_py{sys.version_info.major}{sys.version_info.minor}.jsonl"
    if not docs.exists():
        tmp = docs.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in stdlib_docstring_records():
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, docs)
    out.append(docs)
    bilingual = dest / "zh_en_bilingual.jsonl"
    if not bilingual.exists() or bilingual.read_bytes() != BILINGUAL.read_bytes():
        bilingual.write_bytes(BILINGUAL.read_bytes())
    out.append(bilingual)
    bad = dest / "bad_records.jsonl"
    if not bad.exists():
        bad.write_text("\n".join(bad_record_lines()) + "\n", encoding="utf-8")
    out.append(bad)
    return out
