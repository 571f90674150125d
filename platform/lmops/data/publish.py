"""Write a dataset version atomically: Parquet shards, quarantine and manifest.

Everything is written into a hidden staging folder beside the versions, then
renamed into place in one ``os.rename``. A killed run leaves only a staging
folder (swept on the next run), never a partial version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lmops.data.schema import ACCEPTED_SCHEMA, QUARANTINE_SCHEMA

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
    """A dataset version under construction in ``<root>/.staging-<uuid>``."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        sweep_staging(root)
        self.root = root
        self.path = root / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        self.accepted = _BufferedWriter(self.path, "part", ACCEPTED_SCHEMA, ROWS_PER_SHARD)
        self.quarantine = _BufferedWriter(self.path, "quarantine", QUARANTINE_SCHEMA, 10**9)

    def finish(self, version_id: str, manifest: dict) -> tuple[Path, bool]:
        """Publish under ``version_id``; returns (path, created). Same id twice is a no-op."""
        manifest["shards"] = self.accepted.close()
        manifest["quarantine_files"] = self.quarantine.close()
        (self.path / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        final = self.root / version_id
        if final.exists():
            self.discard()
            return final, False
        os.rename(self.path, final)
        return final, True

    def discard(self) -> None:
        for w in (self.accepted, self.quarantine):
            if w.writer is not None:
                w.writer.close()
                w.writer = None
        shutil.rmtree(self.path, ignore_errors=True)


def sweep_staging(root: Path) -> None:
    """Remove staging folders whose writer process is gone (a killed run)."""
    for p in root.glob(".staging-*"):
        pid = p.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
