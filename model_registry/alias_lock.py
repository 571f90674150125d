"""The promotion lock: mutual exclusion for one alias of one model, on any MLflow backend.

Every move of an alias (a gate, a rollback, an audit revert) happens inside it, so two
moves never interleave. Nothing slow may run under it: it holds up every other move of
the alias meanwhile (a gate re-scores the incumbent before it takes the lock, for that
reason), and one held longer than ``LOCK_STALE_SECONDS`` is taken over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError

LOCK_STALE_SECONDS = 600  # a lock older than this is from a crashed promotion


def lock_name(name: str, alias: str) -> str:
    """The registered model that is the lock of ``name`` @``alias`` while it is held."""
    return f"lmops-lock.{name}.{alias}"


@contextmanager
def alias_lock(name: str, alias: str, who: str) -> Iterator[None]:
    """Mutual exclusion for one alias, on any MLflow backend.

    Registered-model names are unique in every MLflow store, and creating one is a
    single insert that the server refuses when the name exists: the only atomic
    check-and-set MLflow offers to every client. The lock is that model; it is
    deleted on exit, and one older than ``LOCK_STALE_SECONDS`` is taken over.
    """
    client = MlflowClient()
    lock = lock_name(name, alias)
    for _ in range(2):
        try:
            client.create_registered_model(
                lock, tags={"lmops.lock_owner": who}, description=f"promotion of @{alias} running"
            )
            break
        except MlflowException:
            try:
                held = client.get_registered_model(lock)
            except MlflowException:
                continue  # released in between: try again
            age = time.time() - held.creation_timestamp / 1000
            if age > LOCK_STALE_SECONDS:
                client.delete_registered_model(lock)
                continue
            raise LmopsError(
                f"another promotion of {name} @{alias} is in progress "
                f"(by {held.tags.get('lmops.lock_owner', '?')}, {age:.0f} s ago); "
                "retry when it has finished"
            ) from None
    else:
        raise LmopsError(f"could not take the promotion lock for {name} @{alias}")
    try:
        yield
    finally:
        with suppress(MlflowException):
            client.delete_registered_model(lock)
