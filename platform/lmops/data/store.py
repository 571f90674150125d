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
from lmops.home import home, is_remote

MANIFEST = "manifest.json"

# Per protocol: the fsspec driver to install and the variables its credentials come
# from, for the one-line errors (each driver's docs).
_AWS = ("s3fs", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
_GCP = ("gcsfs", "GOOGLE_APPLICATION_CREDENTIALS")
_AZURE = ("adlfs", "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and _KEY)")
STORES = {"s3": _AWS, "s3a": _AWS, "gs": _GCP, "gcs": _GCP, "az": _AZURE, "abfs": _AZURE}
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
    driver, variables = STORES.get(protocol, (protocol + "fs", f"the credentials of {protocol}://"))
    try:
        root.fs.exists(root.path)
    except ImportError as e:
        raise LmopsError(
            f"dataset root {root} needs the fsspec driver for '{protocol}://' "
            f"({e.name or e}); install it, e.g. `pip install {driver}`"
        ) from None
    except Exception as e:  # the stores raise their own classes; see _AUTH_ERRORS
        if type(e).__name__ in _AUTH_ERRORS or isinstance(e, PermissionError):
            raise LmopsError(
                f"dataset root {root} (LMOPS_DATASETS): no usable credentials "
                f"({type(e).__name__}); set {variables}"
            ) from None
        raise


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


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``.npy`` open at ``f``, which is left at the first row."""
    from numpy.lib import format as npf

    major, _ = npf.read_magic(f)
    read_header = npf.read_array_header_1_0 if major == 1 else npf.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if fortran:
        raise LmopsError(f"{f.name}: a Fortran-ordered array is not a signature file")
    return shape, dtype


def npy_rows(path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` (``stop`` -1: to the end) of a ``.npy`` file, read at their
    offset: the same for a local file and an object in a bucket, which has no mmap and
    would otherwise be one download of the whole file."""
    with path.open("rb") as f:
        shape, dtype = _npy_header(f)
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        stop = min(shape[0], stop if stop >= 0 else shape[0])
        start = min(start, stop)
        f.seek(f.tell() + start * row)
        data = f.read((stop - start) * row)
    return np.frombuffer(data, dtype=dtype).reshape((stop - start, *shape[1:]))


def npy_len(path) -> int:
    """The number of rows of a ``.npy`` file, from its header alone."""
    with path.open("rb") as f:
        return _npy_header(f)[0][0]
