"""Live API keys: the server re-reads its key file when the file changes.

A thread checks the file's (inode, size, mtime) every ``interval`` seconds, like the
alias watcher, and on a change loads the keys again and hands them to ``apply``. The
swap is one attribute assignment, so a request sees the old key set or the new one.
Requests already admitted keep running: revocation refuses the key's next request, it
does not cut a stream mid-way. A file that no longer parses keeps the keys in force
(a half-edited file must not lock every client out) and is logged, once per change.
Hand-written: it is one ``stat`` per interval; a file-watching library (inotify) would
not see a change on the network volumes a cluster mounts its secrets from.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from lmops.errors import ConfigError
from lmops.serving.keys import ApiKeys

log = logging.getLogger("lmops.serving")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class KeyWatcher:
    def __init__(
        self, keys: ApiKeys, interval: float, apply: Callable[[ApiKeys], None], metrics=None
    ) -> None:
        self.path, self.interval, self.apply, self.metrics = keys.source, interval, apply, metrics
        self._seen = _signature(self.path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-watch", daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """Reload the keys if the file changed since the last check; True if they were."""
        sig = _signature(self.path)
        if sig == self._seen:
            return False
        self._seen = sig
        try:
            keys = ApiKeys.load(self.path)
        except ConfigError as e:
            log.error("key file changed but was not loaded; the previous keys stay: %s", e)
            if self.metrics is not None:
                self.metrics.key_reload("failed")
            return False
        self.apply(keys)
        log.warning("API keys reloaded from %s: %d key(s)", self.path, len(keys))
        if self.metrics is not None:
            self.metrics.key_reload("loaded")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watcher must outlive any one bad read
                log.exception("key file check failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
