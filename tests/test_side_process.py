"""``lmops.side_process``: steps run in a warmed-up second process, or here without one."""

from __future__ import annotations

import os
import sys

import pytest

from lmops import side_process
from lmops.errors import DataStandardError


def pid_and_modules(*names: str) -> tuple[int, list[bool]]:
    return os.getpid(), [n in sys.modules for n in names]


def fail(message: str) -> None:
    raise DataStandardError(message)


def die_unless_in(pid: int) -> int:
    """Kills any process but ``pid``, where it returns its pid."""
    if os.getpid() != pid:
        os._exit(7)
    return pid


@pytest.fixture
def side():
    yield side_process
    side_process.stop()


def test_without_a_side_process_steps_run_here():
    assert side_process.call(pid_and_modules) == (os.getpid(), [])


def test_steps_run_in_the_warmed_process_and_errors_come_back(side):
    ran = []
    side.start(["email.mime.text"], meanwhile=[lambda: ran.append(1), lambda: ran.append(2)])
    pid, imported = side.call(pid_and_modules, "email.mime.text")
    assert pid != os.getpid()
    assert imported == [True]  # imported by the warm-up, before the first step
    assert ran in ([1], [1, 2])  # the caller's own jobs ran while it waited
    with pytest.raises(DataStandardError, match="too many rejects"):
        side.call(fail, "too many rejects")
    assert side.call(pid_and_modules)[0] == pid  # the same worker serves every step


def test_a_dead_side_process_falls_back_to_this_one(side, caplog):
    side.start([])
    assert side.call(die_unless_in, os.getpid()) == os.getpid()
    assert "side process failed" in caplog.text
    assert side.call(pid_and_modules)[0] == os.getpid()  # stopped: later steps run here


def test_abandon_kills_a_worker_still_importing():
    # A worker told to import GX and matplotlib is still at it a moment later.
    side_process.start(side_process.INGEST_MODULES)
    workers = list(side_process._pool._processes.values())
    assert len(workers) == 1
    side_process.abandon()
    assert not side_process.started()
    assert [w.exitcode for w in workers] == [-9]  # killed, not left to finish its imports
    assert side_process.call(pid_and_modules) == (os.getpid(), [])  # steps run here again
