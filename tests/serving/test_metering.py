"""Token metering: nothing lost under concurrent writers, exact sums, persistence, CLI."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from conftest import assert_clean_error, run_cli
from lmops.errors import ConfigError, LmopsError
from lmops.serving.metering import UsageMeter, parse_since, usage_table

DAY1 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DAY2 = DAY1 + 86400


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'usage.db'}"


@pytest.fixture
def meter(url):
    m = UsageMeter(url)
    yield m
    m.close()


def _fill(m: UsageMeter) -> None:
    m.record("alice", "tiny", "1", "/v1/completions", 10, 5, ts=DAY1 + 60)
    m.record("alice", "tiny", "2", "/v1/chat/completions", 20, 7, ts=DAY2 + 60)
    m.record("bob", "tiny", "2", "/v1/completions", 1, 1, ts=DAY2 + 120)
    m.record("bob", "big", "1", "/v1/completions", 100, 0, status=400, filtered=True, ts=DAY1)


def test_default_database_is_in_the_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / ".lmops"))
    monkeypatch.delenv("LMOPS_USAGE_DB", raising=False)
    m = UsageMeter()
    m.record("alice", "tiny", "1", "/v1/completions", 3, 4)
    m.close()
    assert (tmp_path / ".lmops" / "serving" / "usage.db").is_file()
    other = tmp_path / "elsewhere" / "u.db"
    monkeypatch.setenv("LMOPS_USAGE_DB", f"sqlite:///{other}")
    assert UsageMeter().summary() == [] and other.is_file()


def test_sqlite_runs_in_wal_mode(meter):
    with meter.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_concurrent_writers_lose_nothing(url):
    # Two meters on one file stand for two server processes; four threads each.
    meters = [UsageMeter(url), UsageMeter(url)]
    errors: list[Exception] = []

    def write(i: int) -> None:
        try:
            for j in range(50):
                meters[i % 2].record(f"k{i % 4}", "tiny", "1", "/v1/completions", j, 1)
        except Exception as e:  # surfaced below: a thread's exception fails nothing itself
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    meters[1].flush()  # the other "process" writes its buffer on its own (every 0.5 s)
    rows = meters[0].summary()
    assert sum(r["requests"] for r in rows) == 400
    assert sum(r["prompt_tokens"] for r in rows) == 8 * sum(range(50))
    assert {r["key"]: r["requests"] for r in rows} == {"k0": 100, "k1": 100, "k2": 100, "k3": 100}
    for m in meters:
        m.close()


def test_in_memory_database_is_shared_by_threads():
    m = UsageMeter("sqlite://")
    threads = [
        threading.Thread(target=m.record, args=("k", "tiny", "1", "/v1/completions", 1, 1))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.summary()[0]["requests"] == 8


def test_summary_groups(meter):
    _fill(meter)
    assert meter.summary() == [
        {"key": "bob", "requests": 2, "prompt_tokens": 101, "completion_tokens": 1,
         "total_tokens": 102},
        {"key": "alice", "requests": 2, "prompt_tokens": 30, "completion_tokens": 12,
         "total_tokens": 42},
    ]  # fmt: skip
    assert [
        (r["model"], r["requests"], r["total_tokens"]) for r in meter.summary(group_by="model")
    ] == [("big", 1, 100), ("tiny", 3, 44)]
    assert [
        (r["day"], r["requests"], r["total_tokens"]) for r in meter.summary(group_by="day")
    ] == [("2026-11-01", 2, 115), ("2026-11-02", 2, 29)]
    with pytest.raises(LmopsError, match="cannot group usage by 'hour'"):
        meter.summary(group_by="hour")


def test_summary_filters(meter):
    _fill(meter)
    assert [r["day"] for r in meter.summary(key="alice", group_by="day")] == [
        "2026-11-01",
        "2026-11-02",
    ]
    after = meter.summary(since=DAY2)
    assert [(r["key"], r["requests"]) for r in after] == [("alice", 1), ("bob", 1)]
    before = meter.summary(until=DAY2)
    assert [(r["key"], r["total_tokens"]) for r in before] == [("bob", 100), ("alice", 15)]
    assert meter.summary(key="carol") == []
    assert meter.summary(since=DAY2 + 3600) == []


def test_every_field_is_stored(meter):
    meter.record("bob", "big", "7", "/v1/chat/completions", 9, 0, status=451, filtered=True, ts=5)
    meter.flush()
    with meter.engine.connect() as conn:
        row = conn.execute(select(usage_table)).one()._asdict()
    assert {k: v for k, v in row.items() if k != "id"} == {
        "ts": 5.0, "key": "bob", "model": "big", "version": "7",
        "endpoint": "/v1/chat/completions", "prompt_tokens": 9, "completion_tokens": 0,
        "filtered": True, "status": 451,
    }  # fmt: skip


def test_usage_survives_a_new_meter(url):
    first = UsageMeter(url)
    _fill(first)
    first.close()
    second = UsageMeter(url)
    assert sum(r["requests"] for r in second.summary()) == 4
    second.record("carol", "tiny", "1", "/v1/completions", 1, 1)
    assert len(second.summary()) == 3
    second.close()


@pytest.mark.parametrize(
    "url, needle",
    [
        ("not a url", "is not a SQLAlchemy URL"),
        ("mysql://u@h/db", "use sqlite:// or postgresql://"),
    ],
)
def test_bad_database_urls(url, needle):
    with pytest.raises(ConfigError, match=needle):
        UsageMeter(url)


def test_parse_since():
    now = 1_800_000_000.0
    assert parse_since("24h", now=now) == now - 86400
    assert parse_since("7d", now=now) == now - 7 * 86400
    assert parse_since("30m", now=now) == now - 1800
    assert parse_since("2w", now=now) == now - 14 * 86400
    assert parse_since("2026-11-01") == DAY1
    assert parse_since("2026-11-01T02:00:00+02:00") == DAY1


@pytest.mark.parametrize("bad", ["", "24", "h", "-1d", "1y", "1.5h", "yesterday", "2026-13-01"])
def test_parse_since_refuses_the_rest(bad):
    with pytest.raises(LmopsError, match="cannot read .* as a time"):
        parse_since(bad)


def test_cli_keys_then_usage_end_to_end(tmp_path):
    home = tmp_path / ".lmops"
    env = {"LMOPS_API_KEYS": "", "LMOPS_USAGE_DB": ""}
    added = run_cli(["keys", "add", "alice"], home, timeout=60, env=env)
    assert added.returncode == 0, added.stderr
    raw = added.stdout.strip()

    listed = run_cli(["keys", "list", "--json"], home, timeout=60, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["source"]) for r in rows] == [("alice", "file")] and rows[0]["created"]
    assert raw not in listed.stdout and "sha256" not in listed.stdout

    m = UsageMeter(f"sqlite:///{home / 'serving' / 'usage.db'}")
    m.record("alice", "tiny", "1", "/v1/completions", 12, 30)
    m.record("alice", "tiny", "1", "/v1/completions", 8, 10, ts=DAY1)  # before --since
    m.close()
    usage = run_cli(["usage", "--since", "24h", "--json"], home, timeout=60, env=env)
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout) == [
        {"key": "alice", "requests": 1, "prompt_tokens": 12, "completion_tokens": 30,
         "total_tokens": 42}
    ]  # fmt: skip
    table = run_cli(["usage", "--by", "day"], home, timeout=60, env=env)
    assert table.returncode == 0 and "2026-11-01" in table.stdout and "all" in table.stdout


def test_cli_bad_since_and_bad_db_are_clean_errors(tmp_path):
    home = tmp_path / ".lmops"
    env = {"LMOPS_USAGE_DB": ""}
    assert_clean_error(run_cli(["usage", "--since", "3x"], home, timeout=60, env=env), "'3x'")
    proc = run_cli(["usage", "--db", "mysql://u:pw@h/db"], home, timeout=60, env=env)
    assert_clean_error(proc, "use sqlite:// or postgresql://")
    assert "pw" not in proc.stderr  # the password is masked


def test_buffered_rows_reach_the_database_on_their_own(url):
    writer, reader = UsageMeter(url, flush_interval=0.1), UsageMeter(url)
    writer.record("k", "tiny", "1", "/v1/completions", 3, 4)
    deadline = time.time() + 10
    while not reader.summary():
        assert time.time() < deadline, "the background flush never wrote the row"
        time.sleep(0.05)
    assert reader.summary()[0]["total_tokens"] == 7
    writer.close()
    reader.close()
