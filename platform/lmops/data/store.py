"""The dataset root on any fsspec file system: a local folder or a bucket.

``LMOPS_DATASETS`` (a path or an fsspec URL such as ``s3://bucket/datasets``) moves the
published versions off the home; ``file://`` URLs are local folders. A local root
publishes with one ``os.rename`` of the staging folder. A remote root has no atomic
rename, so a version is staged on a local (or shared) folder and uploaded with its
``manifest.json`` last: every reader (``list_versions``, dedup against earlier
versions, the cached-input check) sees a version only once its manifest exists, so an
interrupted upload is never a visible version, and a rerun uploads it again.

Paths are :class:`pathlib.Path` when local and ``upath.UPath`` (universal-pathlib, the
pathlib API over fsspec) when remote, so readers use one API for both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmops.errors import LmopsError
from lmops.home import as_path, home, is_remote  # noqa: F401  (as_path: re-exported)

MANIFEST = "manifest.json"

# What each store reads its credentials from, for the one-line error (their docs).
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "s3a": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS",
    "az": "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and _KEY)",
    "abfs": "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and _KEY)",
}
# Exception class names the stores raise for missing or refused credentials.
_AUTH_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "ClientAuthenticationError",
    "CredentialUnavailableError",
    "RefreshError",
}


def check_root(root) -> None:
    """Reach a remote dataset root once, or fail with one line naming what to set."""
    if not is_remote(root):
        return
    protocol = root.protocol
    try:
        root.fs.exists(root.path)
    except ImportError as e:
        raise LmopsError(
            f"dataset root {root} needs the fsspec driver for '{protocol}://' "
            f"({e.name or e}); install it, e.g. `pip install {_driver(protocol)}`"
        ) from None
    except Exception as e:  # the stores raise their own classes; see _AUTH_ERRORS
        if type(e).__name__ in _AUTH_ERRORS or isinstance(e, PermissionError):
            need = CREDENTIALS.get(protocol, f"the credentials of {protocol}://")
            raise LmopsError(
                f"dataset root {root} (LMOPS_DATASETS): no usable credentials "
                f"({type(e).__name__}); set {need}"
            ) from None
        raise


def _driver(protocol: str) -> str:
    return {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(protocol, "adlfs")


def staging_root(datasets_root) -> Path:
    """Where a version is staged: beside the versions when local (one rename publishes
    it), else ``LMOPS_STAGING`` or the home's ``staging`` folder. On a multi-node Ray
    cluster that folder must be one every node mounts."""
    if not is_remote(datasets_root):
        return datasets_root
    return Path(os.environ.get("LMOPS_STAGING") or home().root / "staging")


def upload_version(folder: Path, final) -> None:
    """Copy a staged version's files to ``final`` on a remote root, ``manifest.json`` last.

    The manifest is the commit: readers see nothing of the version before it lands.
    Files an interrupted upload left are overwritten by the next one.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    fs, base = final.fs, final.path
    for p in files:
        fs.put_file(str(p), f"{base}/{p.relative_to(folder).as_posix()}")
    fs.put_file(str(folder / MANIFEST), f"{base}/{MANIFEST}")


def open_parquet(path):
    """``pyarrow.parquet.ParquetFile`` of a local or remote file."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path if not is_remote(path) else path.open("rb"))


def read_parquet(path, columns: list[str] | None = None):
    """One Parquet file as a table, local or remote."""
    return open_parquet(path).read(columns=columns)


def npy_rows(path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a ``.npy`` file: memory-mapped when local, read at an offset
    when remote (an object store has no mmap; the whole file would be one download)."""
    if not is_remote(path):
        return np.asarray(np.load(path, mmap_mode="r")[start:stop])
    from numpy.lib import format as npf

    with path.open("rb") as f:
        major, _ = npf.read_magic(f)
        read_header = npf.read_array_header_1_0 if major == 1 else npf.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if fortran:
            raise LmopsError(f"{path}: a Fortran-ordered array is not a signature file")
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        stop = min(shape[0], stop if stop >= 0 else shape[0])
        start = min(start, stop)
        f.seek(f.tell() + start * row)
        data = f.read((stop - start) * row)
    return np.frombuffer(data, dtype=dtype).reshape((stop - start, *shape[1:]))


def npy_len(path) -> int:
    """The number of rows of a ``.npy`` file, from its header alone."""
    if not is_remote(path):
        return len(np.load(path, mmap_mode="r"))
    from numpy.lib import format as npf

    with path.open("rb") as f:
        major, _ = npf.read_magic(f)
        read_header = npf.read_array_header_1_0 if major == 1 else npf.read_array_header_2_0
        return read_header(f)[0][0]
