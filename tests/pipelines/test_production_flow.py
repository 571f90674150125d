"""The @production approval flow against a real temporary Prefect API and MLflow store.

The flow runs in the test's thread and pauses for its typed form; a helper thread waits
for the paused run and resumes it through the API with the form's answer, as the
Prefect UI does. Alias events are read back from the same API.
"""

from __future__ import annotations

import os
import re
import threading
import time

import mlflow
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from conftest import GATE_PASSING_METRICS
from conftest import add_version as shared_add_version
from model_registry import history, history_read
from model_registry.gates import load_policy
from model_registry.promotion import promote
from pipelines import production
from pipelines.events import ALIAS_MOVED, emit_alias_moved, resource_id

GOOD = GATE_PASSING_METRICS


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A temporary Prefect API and an lmops home whose SQLite MLflow store the flow uses."""
    home = tmp_path_factory.mktemp("production") / ".lmops"
    home.mkdir()
    saved = dict(os.environ)  # the flow's prepare_environment() sets defaults in os.environ
    os.environ.update(LMOPS_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}")
    os.environ.pop("LMOPS_PROMOTION_IDENTITY", None)
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    production.PAUSE_POLL_SECONDS = 1
    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield
    finally:
        production.PAUSE_POLL_SECONDS = 10
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def registry(prefect_api, request):
    """A client on the store and a fresh registered model named after the test."""
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    client.name = re.sub(r"\W", "-", request.node.name)[:60]
    client.create_registered_model(client.name)
    return client


def add_version(client, author="lmops-pipeline", **metrics):
    """A registered version of the test's model (``client.name``) with passing evidence."""
    return shared_add_version(client, client.name, author, **metrics)


def run_and_answer(name: str, version: str, *answers: dict, timeout_hours: float = 0.02):
    """Run the flow here; a helper thread resumes its pause with each answer in turn
    (a rejected answer leaves the run paused). Returns the final state and the
    resume errors."""
    errors: list[Exception] = []

    def answer() -> None:
        with get_client(sync_client=True) as client:
            flt = FlowRunFilter(name=FlowRunFilterName(any_=[f"{name}-v{version}"]))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=flt)
                if runs and runs[0].state and runs[0].state.is_paused():
                    break
                time.sleep(0.2)
            else:
                errors.append(TimeoutError("the flow run never paused"))
                return
        for a in answers:
            try:
                resume_flow_run(runs[0].id, run_input=a)
            except Exception as e:  # handed back to the test
                errors.append(e)

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    state = production.production_flow(name, version, timeout_hours, return_state=True)
    helper.join(timeout=30)
    return state, errors


def alias_events(name: str, deadline_s: float = 30) -> list:
    """``lmops.alias.moved`` events of ``name`` as the API stores them (waits for one)."""
    flt = EventFilter(
        event=EventNameFilter(name=[ALIAS_MOVED]),
        resource=EventResourceFilter(id=[resource_id(name)]),
    )
    deadline = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_events(filter=flt, limit=50).events  # the API's maximum
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def paused_ever(state) -> bool:
    with get_client(sync_client=True) as client:
        return any(
            s.is_paused() for s in client.read_flow_run_states(state.state_details.flow_run_id)
        )


def test_approve_moves_production_and_records_both_events(registry):
    m = registry.name
    v = add_version(registry)
    assert promote(m, v, "staging").moved

    state, errors = run_and_answer(
        m, v, {"decision": "approve", "approver": "alice", "comment": "read the card"}
    )
    assert not errors
    assert state.is_completed(), state.message
    result = state.result()
    assert result["moved"] and result["approver"] == "alice" and result["from_version"] == ""
    assert str(registry.get_model_version_by_alias(m, "production").version) == v

    gate = history_read.events(m)[-1]
    assert (gate.event, gate.alias, gate.to_version, gate.passed) == ("gate", "production", v, True)
    assert gate.policy == "production@1"
    assert gate.policy_digest == load_policy("production").digest() and gate.evidence_digest
    (approval,) = history_read.events(m, v, history.APPROVALS_EXPERIMENT)
    assert (approval.event, approval.actor, approval.verified) == ("approve", "alice", False)
    assert approval.comment == "via Prefect form: read the card"

    (event,) = alias_events(m)
    labels = event.resource
    assert (labels["lmops.alias"], labels["lmops.to_version"]) == ("production", v)
    assert labels["lmops.from_version"] == "" and event.payload["reason"] == "production@1 passed"


def test_reject_fails_the_run_and_leaves_production(registry):
    m = registry.name
    v = add_version(registry)
    promote(m, v, "staging")

    bad = {"decision": "maybe", "approver": "bob"}  # not a choice of the typed form
    state, errors = run_and_answer(m, v, bad, {"decision": "reject", "approver": "bob"})
    assert len(errors) == 1 and "Cannot resume this run" in str(errors[0])
    assert state.is_failed()
    assert "bob rejected" in state.message
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.get_model_version_by_alias(m, "production")
    (rejection,) = history_read.events(m, v, history.APPROVALS_EXPERIMENT)
    assert (rejection.event, rejection.actor, rejection.comment) == (
        "reject",
        "bob",
        "via Prefect form",
    )
    assert [e.alias for e in history_read.events(m)] == ["staging"]  # no production gate ran


def test_candidate_failing_a_non_approval_row_fails_before_pausing(registry):
    m = registry.name
    v = add_version(registry, **{"safety/flagged_rate": 0.2})  # staging <= 0.25, prod <= 0.10
    assert promote(m, v, "staging").moved

    t0 = time.monotonic()
    state = production.production_flow(m, v, 0.01, return_state=True)
    assert state.is_failed()
    assert "safety/flagged_rate" in state.message and "approval or not" in state.message
    assert not paused_ever(state)
    assert time.monotonic() - t0 < 30  # a pause would have waited for its 36 s timeout
    assert not history_read.events(m, v, history.APPROVALS_EXPERIMENT)


def test_emit_alias_moved_reaches_the_prefect_api(prefect_api):
    ev = emit_alias_moved("emit-model", "staging", "1", "2", "carol", "rolled back")
    assert ev is not None
    (stored,) = alias_events("emit-model")
    assert stored.id == ev.id
    assert stored.resource["lmops.actor"] == "carol"
    assert (stored.resource["lmops.from_version"], stored.resource["lmops.to_version"]) == (
        "1",
        "2",
    )
    assert stored.payload["reason"] == "rolled back"


def test_emit_alias_moved_without_api_or_run_does_not_start_a_server(prefect_api):
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert PREFECT_API_URL.value() is None
        # emit_event would reuse the harness's running server and return an event
        assert emit_alias_moved("quiet-model", "staging", "", "1", "dave", "x") is None
