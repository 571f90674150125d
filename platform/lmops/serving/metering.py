"""Token usage of ``lmops serve`` per API key: one row per request in a SQL table.

The database is ``LMOPS_USAGE_DB`` (a SQLAlchemy URL; a cluster points it at
PostgreSQL so every replica writes to one place), else SQLite at
``<LMOPS_HOME>/serving/usage.db``. ``lmops usage`` reads it back.

Rows are buffered and written in one transaction every ``flush_interval`` seconds
(0.5 by default) by a background thread: one commit per request took a measurable share
of the server's time under load. A crash loses at most that interval's rows; a clean
shutdown (``close``) writes them all.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from lmops.errors import ConfigError, LmopsError
from lmops.home import home

ENV_VAR = "LMOPS_USAGE_DB"
GroupBy = Literal["key", "model", "day"]
GROUPS: tuple[str, ...] = ("key", "model", "day")
# SQLite makes a second writer wait this long for the lock before it fails.
BUSY_TIMEOUT_S = 30.0

metadata = MetaData()
usage_table = Table(
    "lmops_usage",
    metadata,
    # BIGINT on PostgreSQL (a busy cluster can pass 2**31 requests); on SQLite only
    # INTEGER PRIMARY KEY is the auto-incrementing rowid.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    # Float is double precision on both back ends: epoch seconds keep sub-ms resolution.
    Column("ts", Float, nullable=False, index=True),
    Column("key", String(128), nullable=False, index=True),  # the key's name, never the key
    Column("model", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("filtered", Boolean, nullable=False),
    Column("status", Integer, nullable=False),  # the HTTP status returned
)


def default_url() -> str:
    """``LMOPS_USAGE_DB``, else SQLite in the home's ``serving`` folder."""
    return os.environ.get(ENV_VAR) or f"sqlite:///{home().root / 'serving' / 'usage.db'}"


class UsageMeter:
    """Records and sums token usage; safe to share between threads."""

    def __init__(self, url: str | None = None, flush_interval: float = 0.5):
        self.url = url or default_url()
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ConfigError(
                f"usage database '{self.url}' is not a SQLAlchemy URL "
                "(e.g. sqlite:///usage.db or postgresql://user@host/db)"
            ) from None
        self.backend = parsed.get_backend_name()
        self._shown = parsed.render_as_string(hide_password=True)
        if self.backend == "sqlite":
            self.engine = _sqlite_engine(parsed)
        elif self.backend == "postgresql":
            # pre_ping: after a database restart, the next record reconnects instead of failing.
            self.engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise ConfigError(
                f"usage database {self._shown}: use sqlite:// or postgresql://, "
                f"not {self.backend}://"
            )
        # SQLite takes one writer at a time anyway: queueing threads here spares them
        # the busy-wait (and serialises the single connection of an in-memory database).
        self._lock = threading.Lock() if self.backend == "sqlite" else contextlib.nullcontext()
        self._create_table()
        self._pending: list[dict] = []
        self._pending_lock = threading.Lock()
        self._interval = flush_interval
        self._stop = threading.Event()
        self._flusher = None
        if flush_interval > 0:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except SQLAlchemyError as e:  # the database is down: keep the rows, retry
                import logging

                logging.getLogger("lmops.serving").warning("usage not written yet: %s", e)

    def flush(self) -> None:
        """Write the buffered rows now (one transaction)."""
        with self._pending_lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            with self._lock, self.engine.begin() as conn:
                conn.execute(insert(usage_table), rows)
        except SQLAlchemyError:
            with self._pending_lock:
                self._pending[:0] = rows
            raise

    def _create_table(self) -> None:
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as e:
            # Replicas starting together race to create it; losing that race is fine.
            with contextlib.suppress(SQLAlchemyError):
                if inspect(self.engine).has_table(usage_table.name):
                    return
            raise ConfigError(f"cannot open usage database {self._shown}: {_reason(e)}") from None

    def record(
        self,
        key: str,
        model: str,
        version: str,
        endpoint: str,
        prompt_tokens: int,
        completion_tokens: int,
        status: int = 200,
        filtered: bool = False,
        ts: float | None = None,
    ) -> None:
        """Append one request's usage; ``ts`` defaults to now (epoch seconds)."""
        row = {
            "ts": time.time() if ts is None else float(ts),
            "key": key,
            "model": model,
            "version": str(version),
            "endpoint": endpoint,
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "filtered": bool(filtered),
            "status": int(status),
        }
        with self._pending_lock:
            self._pending.append(row)
        if self._flusher is None:
            self.flush()

    def summary(
        self,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
        group_by: GroupBy = "key",
    ) -> list[dict]:
        """Requests and tokens per group, for rows with ``since <= ts < until``.

        Keys and models come busiest first (most total tokens), days oldest first.
        Each dict holds the group under the name ``group_by`` (days as UTC
        ``YYYY-MM-DD``), then requests, prompt_tokens, completion_tokens, total_tokens.
        """
        self.flush()  # this process's buffered rows count too
        if group_by not in GROUPS:
            raise LmopsError(f"cannot group usage by '{group_by}': use one of {', '.join(GROUPS)}")
        t = usage_table.c
        group = self._day(t.ts) if group_by == "day" else t[group_by]
        group = group.label("grp")
        prompt = func.coalesce(func.sum(t.prompt_tokens), 0)
        completion = func.coalesce(func.sum(t.completion_tokens), 0)
        total = (prompt + completion).label("total")
        stmt = select(
            group, func.count().label("requests"), prompt.label("p"), completion.label("c"), total
        ).group_by(group)
        if key is not None:
            stmt = stmt.where(t.key == key)
        if since is not None:
            stmt = stmt.where(t.ts >= since)
        if until is not None:
            stmt = stmt.where(t.ts < until)
        stmt = stmt.order_by(group) if group_by == "day" else stmt.order_by(total.desc(), group)
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            {
                group_by: r.grp,
                "requests": int(r.requests),
                "prompt_tokens": int(r.p),
                "completion_tokens": int(r.c),
                "total_tokens": int(r.total),
            }
            for r in rows
        ]

    def _day(self, ts):
        """The UTC calendar day of an epoch-seconds column, as ``YYYY-MM-DD`` text."""
        if self.backend == "sqlite":
            return func.date(ts, literal_column("'unixepoch'"))
        # Literals, not bound parameters: PostgreSQL must see the GROUP BY expression
        # and the selected one as identical, and $1 and $2 are not.
        return func.to_char(
            func.timezone(literal_column("'UTC'"), func.to_timestamp(ts)),
            literal_column("'YYYY-MM-DD'"),
        )

    def close(self) -> None:
        """Write what is buffered, then release the pooled connections."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()
        self.engine.dispose()


def _sqlite_engine(url):
    if url.database in (None, "", ":memory:"):
        # One shared connection: the default pool would give each thread its own,
        # empty in-memory database.
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_conn, _record):
        # WAL: readers (`lmops usage`) never block the server's writes, nor it theirs.
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    return engine


def _reason(e: SQLAlchemyError) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump."""
    orig = getattr(e, "orig", None)
    return (str(orig or e).strip().splitlines() or [type(e).__name__])[0]


_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``30m``/``24h``/``7d``/``2w`` ago, or for an ISO date or
    date-time (``2026-11-01`` is its midnight; times without an offset are UTC)."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return (time.time() if now is None else now) - int(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise LmopsError(
            f"cannot read '{text}' as a time: use a duration (30m, 24h, 7d, 2w) "
            "or a UTC date (2026-11-01)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
