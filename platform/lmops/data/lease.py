"""A staging folder's lease: who writes it, renewed by a heartbeat while they do.

``LMOPS_HOME`` may be shared (NFS) by several hosts, and a pid says nothing about a
process on another host. So each staging folder holds ``lease.json`` (host, pid, time),
a daemon thread rewrites it every :data:`HEARTBEAT_S` while the ingest runs, and
:func:`expired` calls a folder abandoned only once its lease is older than
:data:`LEASE_TTL_S`, whatever its pid.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from lmops.run_heartbeat import HEARTBEAT_S, LEASE_TTL_S  # one pair of timings for both

LEASE_FILE = "lease.json"


class Lease:
    """Holds ``folder/lease.json`` fresh from a daemon thread until :meth:`release`."""

    def __init__(self, folder: Path, heartbeat_s: float | None = None):
        self.file = folder / LEASE_FILE
        self.heartbeat_s = heartbeat_s or HEARTBEAT_S
        self._stop = threading.Event()
        self.renew()
        self._thread = threading.Thread(target=self._beat, name=f"lease {folder.name}", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Write a new lease; ``os.replace`` so that a sweep never reads half a file."""
        tmp = self.file.with_name(LEASE_FILE + ".tmp")
        body = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, self.file)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.renew()
            except OSError:
                if not self.file.parent.exists():  # discarded under us: nothing to hold
                    return
                # A missed beat; the TTL allows for many.

    def release(self) -> None:
        """Stop the heartbeat and remove the lease (the folder is published or discarded)."""
        self._stop.set()
        self._thread.join()
        self.file.unlink(missing_ok=True)


def age(folder: Path) -> float:
    """Seconds since the folder's lease was renewed.

    The time is the owner's clock (the TTL absorbs skew). A folder without a readable
    lease (its writer died between ``mkdir`` and the first lease) counts from its mtime.
    """
    try:
        renewed = float(json.loads((folder / LEASE_FILE).read_text(encoding="utf-8"))["time"])
    except (OSError, ValueError, KeyError, TypeError):
        renewed = folder.stat().st_mtime
    return time.time() - renewed


def expired(folder: Path, ttl_s: float | None = None) -> bool:
    """True when nobody has renewed the folder's lease for ``ttl_s`` seconds."""
    try:
        return age(folder) > (ttl_s or LEASE_TTL_S)
    except FileNotFoundError:  # removed meanwhile
        return False
