"""Where lmops keeps its state, and how it finds the services it talks to.

Embedded defaults put everything under ``LMOPS_HOME`` (default ``./.lmops``):
MLflow on SQLite plus an artifact folder, the embedded Prefect API's database
(:mod:`lmops.prefect_api`), local Ray's checkpoints. The standard variables ``MLFLOW_TRACKING_URI``,
``RAY_ADDRESS`` and ``PREFECT_API_URL`` switch each to a real server; no code changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    """Resolved locations for one lmops home."""

    root: Path

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def datasets(self) -> Path:
        """``LMOPS_DATASETS`` (a path or fsspec URL, see :mod:`lmops.data.store`), else
        ``datasets`` in the home."""
        value = os.environ.get("LMOPS_DATASETS")
        return as_path(value) if value else self.root / "datasets"

    @property
    def tokenizers(self) -> Path:
        return self.root / "tokenizers"

    @property
    def token_shards(self) -> Path:
        return self.root / "tokens"

    @property
    def ray_results(self) -> Path:
        return self.root / "ray_results"

    @property
    def samples(self) -> Path:
        return self.root / "sample_corpus"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def embedded_tracking_uri(self) -> str:
        """The home's own MLflow store: SQLite at ``mlflow.db``."""
        return f"sqlite:///{self.mlflow_db}"

    @property
    def tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` if set, else SQLite inside the home."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.embedded_tracking_uri

    @property
    def embedded_mlflow(self) -> bool:
        """True when MLflow's store is this home's SQLite database.

        Decided by value, not by whether ``MLFLOW_TRACKING_URI`` is set:
        ``mlflow.set_tracking_uri`` exports that variable into this process and its
        children, so after the first ``configure_mlflow`` it is set even when the user
        set nothing. Testing its mere presence once made every experiment lmops created
        take MLflow's default artifact root, ``./mlruns`` of the working directory.
        """
        return self.tracking_uri == self.embedded_tracking_uri


def as_path(value) -> Path:
    """A path or URL string as ``Path`` (local, ``file://`` included) or ``upath.UPath``."""
    if not isinstance(value, str):
        return value
    if "://" not in value:
        return Path(value).expanduser().resolve()
    if value.startswith("file://"):
        return Path(value[len("file://") :])
    from upath import UPath

    return UPath(value)


def as_uri(path) -> str:
    """``file://`` URI of a local path; a remote path's own URL."""
    return str(path) if is_remote(path) else path.as_uri()


def is_remote(path) -> bool:
    """True for a ``UPath`` on a non-local file system (``UPath`` of a local path is a
    ``Path``)."""
    return not isinstance(path, Path)


def home() -> Home:
    """The active home: ``LMOPS_HOME`` or ``./.lmops``, as an absolute path."""
    return Home(Path(os.environ.get("LMOPS_HOME", ".lmops")).expanduser().resolve())


def cache_dir() -> Path:
    """Files derived once per machine and shared by every home: ``$LMOPS_CACHE``, else
    ``$XDG_CACHE_HOME/lmops``, else ``~/.cache/lmops``. Deleting it costs only time."""
    root = os.environ.get("LMOPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "lmops"
    )
    return Path(root).expanduser()


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; it replaces ``path`` if the block ends
    without error and is removed if not, so readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def prepare_environment() -> Home:
    """Create the home and point every library at it before any of them is imported.

    Called first by the CLI and the flows. It only sets variables the user has not
    set, so real servers configured through the environment always win.
    """
    h = home()
    for d in (h.root, h.artifacts, h.prefect, h.logs):
        d.mkdir(parents=True, exist_ok=True)
    if not is_remote(h.datasets):  # a bucket is reached (and checked) when ingest needs it
        h.datasets.mkdir(parents=True, exist_ok=True)
    defaults = {
        # Prefect: without PREFECT_API_URL it runs an ephemeral API on a SQLite
        # database; keep that database inside the lmops home.
        "PREFECT_HOME": str(h.prefect),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        # A new home's ephemeral API first migrates its database: Prefect's 20 s default
        # wait was measured too short on 2 cores (a fresh `make run` failed on it).
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Telemetry calls would only time out on closed networks.
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TOKENIZERS_PARALLELISM": "true",
        "RAY_TRAIN_V2_ENABLED": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return h
