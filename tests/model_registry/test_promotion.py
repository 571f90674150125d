"""Promotion against a real MLflow registry (SQLite): gates, approvals, rollback, history."""

import getpass
import os
import re
import subprocess
import sys
from contextlib import contextmanager

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import GATE_PASSING_METRICS
from conftest import add_version as shared_add_version
from lmops.errors import LmopsError
from model_registry import history_read, promotion
from model_registry import tags as T
from model_registry.alias_lock import alias_lock, lock_name
from model_registry.promotion import RESCORE_ATTEMPTS, approve, promote, rollback

GOOD = GATE_PASSING_METRICS


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture
def registry(store, monkeypatch, request):
    """A client on the store and a fresh registered model named after the test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("LMOPS_PROMOTION_IDENTITY", raising=False)
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    client.name = re.sub(r"\W", "-", request.node.name)[:60]
    client.create_registered_model(client.name)
    return client


def add_version(client, author="lmops-pipeline", **metrics):
    """A registered version of the test's model (``client.name``) with passing evidence."""
    return shared_add_version(client, client.name, author, **metrics)


def test_promote_approve_production_rollback_history(registry):
    m = registry.name
    v1, v2 = add_version(registry), add_version(registry, **{"eval/bits_per_byte": 1.9})
    assert promote(m, v1, "staging").decision.passed
    assert str(registry.get_model_version_by_alias(m, "staging").version) == v1

    refused = promote(m, v1, "production")
    assert not refused.decision.passed and not refused.moved
    assert any("FAIL approvals" in r for r in refused.decision.reasons)
    approve(m, v1, comment="read the card and the red-team table")
    assert promote(m, v1, "production").moved

    # v2 reaches production the same way; rollback returns v1.
    promote(m, v2, "staging", rescore=lambda inc, es: dict(GOOD))
    approve(m, v2)
    assert promote(m, v2, "production", rescore=lambda inc, es: dict(GOOD)).moved
    back = rollback(m, "production")
    assert str(registry.get_model_version_by_alias(m, "production").version) == v1
    assert (back.from_version, back.to_version) == (v2, v1)

    events = history_read.events(m)
    assert [(e.event, e.alias, e.to_version) for e in events] == [
        ("gate", "staging", v1),
        ("gate", "production", ""),
        ("gate", "production", v1),
        ("gate", "staging", v2),
        ("gate", "production", v2),
        ("rollback", "production", v1),
    ]
    moved = events[2]
    assert moved.actor == getpass.getuser() and not moved.verified  # embedded: unverified
    assert moved.policy == "production@1" and moved.policy_digest and moved.evidence_digest
    assert moved.from_version == "" and events[4].from_version == v1
    page = registry.get_model_version(m, v1).description  # what the version page shows
    assert "## Promotion history" in page and "gate REFUSED" in page and "approve" in page
    assert "approvals by role 'approver': 0 (none) >= 1" in page
    note = registry.get_run(moved.run_id).data.tags[T.NOTE]
    assert "Reasons:" in note and "\n- ok approvals" in note  # readable, one reason per line


def test_tampered_evidence_is_refused_and_recorded(registry):
    m = registry.name
    v = add_version(registry)
    registry.set_model_version_tag(m, v, "eval.bits_per_byte", "1.0")  # hand-edited
    out = promote(m, v, "staging")
    assert not out.decision.passed
    assert (
        "eval.bits_per_byte is 1.0 on the version, 2 in the signed evidence"
        in (out.decision.reasons[0])
    )
    assert registry.get_model_version(m, v).tags[T.gate("staging")] == "refused"
    assert history_read.events(m)[-1].passed is False


def test_missing_evidence_is_refused(registry):
    m = registry.name
    mv = registry.create_model_version(m, source="file:///nonexistent/model")
    out = promote(m, str(mv.version), "staging")
    assert not out.decision.passed and "carries no signed evidence" in out.decision.reasons[0]


def test_regression_against_incumbent_is_refused(registry):
    m = registry.name
    v1, v2 = add_version(registry), add_version(registry, **{"eval/bits_per_byte": 2.5})
    promote(m, v1, "staging")
    out = promote(m, v2, "staging", rescore=lambda inc, es: {"eval/bits_per_byte": 2.0})
    assert not out.decision.passed
    assert str(registry.get_model_version_by_alias(m, "staging").version) == v1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, "99", "staging"), "has no version 99"),
        (("nope", "1", "staging"), "no registered model 'nope'"),
        ((None, "1", "prod"), "unknown alias 'prod'"),
    ],
)
def test_bad_requests_are_clear_errors(registry, args, message):
    add_version(registry)
    with pytest.raises(LmopsError, match=message):
        promote(args[0] or registry.name, *args[1:])


def test_author_cannot_approve_own_version(registry):
    m = registry.name
    v = add_version(registry, author=getpass.getuser())
    with pytest.raises(LmopsError, match="cannot approve it"):
        approve(m, v)


def test_only_the_promotion_identity_moves_production(registry, monkeypatch):
    m = registry.name
    v = add_version(registry)
    monkeypatch.setenv("LMOPS_PROMOTION_IDENTITY", "release-bot")
    with pytest.raises(LmopsError, match="only the promotion identity 'release-bot'"):
        promote(m, v, "production")


def test_a_promotion_in_progress_blocks_another(registry):
    m = registry.name
    v = add_version(registry)
    code = f"from model_registry.promotion import promote; promote('{m}', '{v}', 'staging')"
    with alias_lock(m, "staging", "someone"):
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ
        )
    assert proc.returncode != 0 and f"another promotion of {m} @staging is in progress" in (
        proc.stderr
    )
    assert not history_read.events(m)  # the loser wrote nothing


def test_racing_promotions_keep_history_consistent(registry):
    m = registry.name
    versions = [add_version(registry) for _ in range(4)]
    code = (
        "import sys; from model_registry.promotion import promote; "
        "promote(sys.argv[2], sys.argv[1], 'staging')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, v, m], stderr=subprocess.PIPE, text=True, env=os.environ
        )
        for v in versions
    ]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    winners = [v for v, (rc, _) in zip(versions, results, strict=True) if rc == 0]
    for rc, err in results:
        assert rc == 0 or "in progress" in err, err
    assert winners
    events = history_read.events(m)
    assert sorted(e.version for e in events) == sorted(winners)  # one event per winner
    moved = [e.to_version for e in events if e.to_version]
    assert moved  # the first winner found no incumbent and passed
    assert str(registry.get_model_version_by_alias(m, "staging").version) == moved[-1]


def test_the_incumbent_is_rescored_before_the_lock_is_taken(registry, monkeypatch):
    """Re-scoring runs a model for minutes: never while the alias's lock is held."""
    m = registry.name
    v1, v2 = add_version(registry), add_version(registry)
    promote(m, v1, "staging")
    held = []  # the lock while the real alias_lock holds it
    real_lock = promotion.alias_lock

    @contextmanager
    def spied_lock(*args):
        with real_lock(*args):
            held.append(args)
            try:
                yield
            finally:
                held.remove(args)

    monkeypatch.setattr(promotion, "alias_lock", spied_lock)
    calls = []

    def rescore(incumbent: str, eval_set: str) -> dict[str, float]:
        in_store = registry.search_registered_models(f"name = '{lock_name(m, 'staging')}'")
        calls.append((incumbent, eval_set, list(held), len(in_store)))
        with real_lock(m, "staging", "probe"):  # free: another move could take it now
            pass
        return dict(GOOD)

    out = promote(m, v2, "staging", rescore=rescore)
    assert out.moved and out.event.from_version == v1
    assert calls == [(v1, "es-a", [], 0)]


def test_a_holder_that_changed_while_rescored_is_rescored_again(registry):
    m = registry.name
    v1, v2, v3 = (add_version(registry) for _ in range(3))
    promote(m, v1, "staging")
    calls = []

    def rescore(incumbent: str, eval_set: str) -> dict[str, float]:
        calls.append(incumbent)
        if len(calls) == 1:  # another promotion finishes meanwhile: the lock is free
            assert promote(m, v3, "staging", rescore=lambda inc, es: dict(GOOD)).moved
        return dict(GOOD)

    out = promote(m, v2, "staging", rescore=rescore)
    assert calls == [v1, v3]  # the gate compared v2 with the holder it displaced
    assert out.moved and out.event.from_version == v3
    assert any(f"incumbent v{v3} re-scored" in r for r in out.decision.reasons)


def test_an_alias_that_keeps_moving_fails_the_promotion_unrecorded(registry):
    m = registry.name
    first, candidate, *others = [add_version(registry) for _ in range(2 + RESCORE_ATTEMPTS)]
    promote(m, first, "staging")
    movers = iter(others)

    def rescore(incumbent: str, eval_set: str) -> dict[str, float]:
        promote(m, next(movers), "staging", rescore=lambda inc, es: dict(GOOD))
        return dict(GOOD)

    with pytest.raises(LmopsError, match=f"moved {RESCORE_ATTEMPTS} times"):
        promote(m, candidate, "staging", rescore=rescore)
    assert not history_read.events(m, candidate)
    assert str(registry.get_model_version_by_alias(m, "staging").version) == others[-1]
