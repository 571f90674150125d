"""Write a dataset version atomically: Parquet shards, quarantine and manifest.

Everything is written into a hidden staging folder beside the versions, then
renamed into place in one ``os.rename``. A killed run leaves only a staging
folder (swept by a later run once its lease expires), never a partial version.
On a remote dataset root (:mod:`lmops.data.store`) the staging folder is local and
the version is uploaded with its manifest last, the manifest being the commit.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lmops.data.lease import Lease, expired
from lmops.data.standard.schema import ACCEPTED_SCHEMA, QUARANTINE_SCHEMA
from lmops.data.store import is_remote, staging_root, upload_version

ROWS_PER_SHARD = 50_000
BATCH_ROWS = 2_000


class _BufferedWriter:
    """Rows buffered into Arrow batches; a new file every ``rows_per_file`` rows."""

    def __init__(self, folder: Path, stem: str, schema: pa.Schema, rows_per_file: int):
        self.folder, self.stem, self.schema, self.rows_per_file = (
            folder,
            stem,
            schema,
            rows_per_file,
        )
        self.buffer: list[dict] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_file = 0
        self.files: list[str] = []

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= BATCH_ROWS:
            self.flush()

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Write an Arrow batch as is (after any buffered rows)."""
        self.flush()
        self._ensure_writer()
        self.writer.write_batch(batch)
        self._rotate(batch.num_rows)

    def _ensure_writer(self) -> None:
        if self.writer is None:
            name = f"{self.stem}-{len(self.files):05d}.parquet"
            self.files.append(name)
            self.writer = pq.ParquetWriter(self.folder / name, self.schema, compression="zstd")

    def _rotate(self, rows: int) -> None:
        self.rows_in_file += rows
        if self.rows_in_file >= self.rows_per_file:
            self.writer.close()
            self.writer, self.rows_in_file = None, 0

    def flush(self) -> None:
        if not self.buffer:
            return
        self._ensure_writer()
        self.writer.write_batch(pa.RecordBatch.from_pylist(self.buffer, schema=self.schema))
        rows, self.buffer = len(self.buffer), []
        self._rotate(rows)

    def close(self) -> list[str]:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if not self.files:  # always leave one (empty) file so readers find the schema
            name = f"{self.stem}-00000.parquet"
            pq.write_table(self.schema.empty_table(), self.folder / name)
            self.files.append(name)
        return self.files


class StagedVersion:
    """A dataset version under construction in ``<root>/.staging-<pid>-<hex>``.

    ``root`` is the dataset root the version is published to; a remote root stages in
    :func:`~lmops.data.store.staging_root` instead (``self.root``; ``self.dest`` is the
    root).

    Each stage writes its own files through :meth:`writer`, which first removes what an
    earlier attempt of the same stage left: a retried stage never duplicates rows. A
    :class:`~lmops.data.lease.Lease` tells sweeps on any host that the folder is in use.
    """

    def __init__(self, root, heartbeat_s: float | None = None):
        self.dest = root
        root = staging_root(root)
        root.mkdir(parents=True, exist_ok=True)
        sweep_staging(root)
        self.root = root
        self.path = root / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        self.lease = Lease(self.path, heartbeat_s)
        self._writers: dict[str, _BufferedWriter] = {}

    def writer(self, stem: str, schema: pa.Schema, rows_per_file: int) -> _BufferedWriter:
        """A new writer of ``<stem>-*.parquet``, after removing any earlier attempt's files."""
        self._abandon(stem)
        self.drop(stem)
        self._writers[stem] = w = _BufferedWriter(self.path, stem, schema, rows_per_file)
        return w

    def accepted(self) -> _BufferedWriter:
        return self.writer("part", ACCEPTED_SCHEMA, ROWS_PER_SHARD)

    def quarantine(self, stage: str) -> _BufferedWriter:
        """The quarantine rows of one stage: ``quarantine-<stage>-*.parquet``.

        Stages name themselves by number (``1-read``, ``3-decide``) so that sorted file
        names list the rows stage by stage, as the records went through.
        """
        return self.writer(f"quarantine-{stage}", QUARANTINE_SCHEMA, 10**9)

    def drop(self, stem: str) -> None:
        """Remove ``<stem>-*.parquet``: a stage's output once the next stage has used it."""
        for f in self.path.glob(f"{stem}-*.parquet"):
            f.unlink()

    def _abandon(self, stem: str) -> None:
        w = self._writers.pop(stem, None)
        if w is not None and w.writer is not None:
            w.writer.close()

    def finish(self, version_id: str, manifest: dict) -> tuple[Path, bool]:
        """Publish under ``version_id``; returns (path, created). Same id twice is a no-op."""
        manifest["shards"] = sorted(p.name for p in self.path.glob("part-*.parquet"))
        manifest["quarantine_files"] = sorted(
            p.name for p in self.path.glob("quarantine-*.parquet")
        )
        (self.path / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        final = self.dest / version_id
        # A version is its manifest: a local rename makes both at once, and a remote
        # upload writes it last (what an interrupted upload left is overwritten).
        if (final / "manifest.json").exists():
            self.discard()
            return final, False
        if is_remote(final):
            upload_version(self.path, final)
            self.discard()
            return final, True
        # Released first: renewing after the rename would write into a published version.
        self.lease.release()
        os.rename(self.path, final)
        return final, True

    def discard(self) -> None:
        for stem in list(self._writers):
            self._abandon(stem)
        self.lease.release()
        shutil.rmtree(self.path, ignore_errors=True)


def sweep_staging(root: Path, ttl_s: float | None = None) -> list[Path]:
    """Remove staging folders whose lease expired (their run died); return them.

    Only the lease decides, never a pid: on a home shared across hosts, a pid that is not
    alive here may be a live ingest on another host.
    """
    swept = []
    for p in root.glob(".staging-*"):
        if p.is_dir() and expired(p, ttl_s):
            shutil.rmtree(p, ignore_errors=True)
            swept.append(p)
    return swept
