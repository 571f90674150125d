"""Ingest stage 0, ``hash``: hash the source files and derive the version id.

The version id is a content hash of the resolved standard, the ingest config and the
source files, known before any record is read, so an input already published is
recognised at once (a cache hit ends the ingest here).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import fsspec

from lmops.config import DataConfig
from lmops.data.sources import expand_sources
from lmops.data.standard import Standard
from lmops.errors import SourceError

# DataConfig fields that do not change what an ingest publishes.
NOT_IN_VERSION_ID = {"sources", "workers", "batch_rows", "val_fraction"}


def file_sha256(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with fsspec.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def version_id_for(std: Standard, cfg: DataConfig, files: list[str], hashes: dict[str, str]) -> str:
    """The version id: a hash of the resolved standard, the ingest config and the sources.

    Computed before any record is processed, so an unchanged input is recognised at
    once and its published version reused (no duplicate, and the ingest is skipped).
    ``std.digest`` covers every threshold, word list and the GX suite; settings that
    only later stages read (the validation split) or that change speed, not output,
    are left out.
    """
    h = hashlib.sha256()
    data_cfg = cfg.model_dump(mode="json", exclude=NOT_IN_VERSION_ID)
    h.update(json.dumps([std.name, std.digest, data_cfg], sort_keys=True).encode())
    for f in files:
        h.update(hashes[f].encode())
    return "ds-" + h.hexdigest()[:16]


@dataclass(frozen=True)
class SourceSet:
    """The files behind the sources, hashed once: the version id and the read both use it."""

    files: list[str]
    hashes: dict[str, str]
    total_bytes: int


def hash_sources(sources: list[str]) -> SourceSet:
    files = expand_sources(sources)
    hashes, total = {}, 0
    for f in files:
        try:
            hashes[f], size = file_sha256(f)
        except PermissionError:
            raise SourceError(f"{f}: permission denied; fix its mode") from None
        total += size
    return SourceSet(files, hashes, total)
