"""Retry policy for Prefect tasks: retry transient I/O failures, never user errors."""

from __future__ import annotations

from lmops.errors import LmopsError


def transient_io_only(task, task_run, state) -> bool:
    """``retry_condition_fn``: True for OS/network errors, False for errors the user must fix."""
    try:
        state.result()
    except LmopsError:
        return False
    except (OSError, ConnectionError, TimeoutError):
        return True
    except Exception as e:  # MLflow wraps HTTP failures of a restarting server
        return "Connection" in type(e).__name__ or "API request" in str(e)
    return False
