"""Forged evidence, files and moves against a real MLflow registry (SQLite): each refused.

Each test starts from a version signed the way the pipeline signs it and makes one
realistic forgery: what an EDIT user can do with ``MlflowClient`` or the MLflow UI.
"""

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import GATE_PASSING_METRICS, assert_clean_error, run_cli
from conftest import add_version as shared_add_version
from model_registry import history_read, keys
from model_registry import tags as T
from model_registry.attestation import Unverified
from model_registry.audit import audit_model
from model_registry.promotion import approve, promote
from model_registry.signed_evidence import resign, verify_version
from model_registry.verify import verify
from pipelines.registry_audit import WebhookReceiver, check_signature

GOOD = GATE_PASSING_METRICS


@pytest.fixture
def registry(tmp_path, monkeypatch, request):
    """A fresh store and home (own signing key and trust file) per test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / "home"))
    for var in ("LMOPS_PROMOTION_IDENTITY", keys.SIGNING_KEY_ENV, keys.PROMOTION_KEY_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(keys.TRUST_FILE_ENV, raising=False)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    client.name = re.sub(r"\W", "-", request.node.name)[:60]
    client.create_registered_model(client.name)
    return client


def add(client, **metrics):
    return shared_add_version(client, client.name, **metrics)


def refusal(client, version, alias="staging") -> str:
    out = promote(client.name, version, alias, rescore=lambda inc, es: dict(GOOD))
    assert not out.decision.passed and not out.moved
    last = history_read.events(client.name)[-1]
    assert last.event == "gate" and not last.passed  # the refusal is on record
    assert client.get_model_version(client.name, version).tags[T.gate(alias)] == "refused"
    return out.decision.reasons[0]


def test_signed_evidence_passes_the_gate(registry):
    v = add(registry)
    assert verify_version(registry.name, v).metrics["eval/bits_per_byte"] == 2.0
    assert promote(registry.name, v, "staging").moved
    assert verify(f"{registry.name}@staging").ok


def test_an_edited_evidence_tag_with_the_old_digest_recomputed(registry):
    """The attack of the issue: better bits/byte, and the unkeyed digest made to match."""
    v = add(registry, **{"eval/bits_per_byte": 4.2213})
    tags = registry.get_model_version(registry.name, v).tags
    forged = {k: x for k, x in tags.items() if k.split(".")[0] in T.EVIDENCE_FAMILIES}
    forged["eval.bits_per_byte"] = "3.5"
    blob = json.dumps({"eval_set": "es-a", "evidence": forged}, sort_keys=True).encode()
    registry.set_model_version_tag(registry.name, v, "eval.bits_per_byte", "3.5")
    registry.set_model_version_tag(
        registry.name, v, T.EVIDENCE_DIGEST, hashlib.sha256(blob).hexdigest()[:32]
    )
    why = refusal(registry, v)
    assert why.endswith("eval.bits_per_byte is 3.5 on the version, 4.2213 in the signed evidence")


def test_data_validation_flipped_to_passed(registry):
    v = add(registry)
    # Re-sign as the pipeline would for a dataset that failed its standard.
    from model_registry.signed_evidence import Author, sign_version

    sign_version(
        registry.name,
        v,
        GOOD,
        "es-a",
        {T.DATA_VALIDATION: "failed"},
        Author("lmops-pipeline", False, "local"),
    )
    registry.set_model_version_tag(registry.name, v, T.DATA_VALIDATION, "passed")
    assert "lmops.data_validation is passed on the version, failed in the signed evidence" in (
        refusal(registry, v)
    )


def test_registered_by_changed(registry):
    v = add(registry)
    registry.set_model_version_tag(registry.name, v, T.REGISTERED_BY, "mallory")
    assert "lmops.registered_by is mallory on the version, lmops-pipeline in the signed" in (
        refusal(registry, v)
    )


def test_a_weights_file_replaced_in_the_artifact_store(registry):
    v = add(registry)
    source = Path(registry.get_model_version(registry.name, v).source.removeprefix("file://"))
    (source / "model.safetensors").write_bytes(b"backdoored weights")
    why = refusal(registry, v)
    assert "the model files differ from the signed ones" in why and "model.safetensors" in why


def test_a_signature_made_with_an_untrusted_key(registry, tmp_path, monkeypatch):
    own = tmp_path / "mallory.pem"
    keys.write_new_key(own)
    add(registry)  # the home's key exists and is trusted
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, str(own))
    v = add(registry)  # signed with mallory's key, which the trust file does not list
    monkeypatch.delenv(keys.SIGNING_KEY_ENV)
    assert "which" in (why := refusal(registry, v)) and "does not trust for evidence" in why


def test_two_trusted_keys_during_a_rotation(registry, tmp_path, monkeypatch):
    old = add(registry)
    new_key = tmp_path / "new.pem"
    keys.write_new_key(new_key)
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, str(new_key))
    keys.add_trusted(keys.signer(keys.EVIDENCE).public_key, keys.ROLES, "pipeline 2027")
    new = add(registry)
    assert verify_version(registry.name, old).keyid != verify_version(registry.name, new).keyid


def test_evidence_copied_from_another_version(registry):
    v1, v2 = add(registry), add(registry, **{"eval/bits_per_byte": 2.9})
    tags = registry.get_model_version(registry.name, v1).tags
    for t in (T.SIGNED_EVIDENCE, T.MODEL_SIGNATURE, T.EVIDENCE_DIGEST, "eval.bits_per_byte"):
        registry.set_model_version_tag(registry.name, v2, t, tags[t])
    assert f"the signed evidence is for models:/{registry.name}/{v1}" in refusal(registry, v2)


def test_new_evidence_voids_an_approval(registry):
    v = add(registry)
    assert promote(registry.name, v, "staging").moved
    approve(registry.name, v, comment="read the card")
    resign(registry.name, v, {**GOOD, "eval/bits_per_byte": 2.1}, "es-a")
    out = promote(registry.name, v, "production")
    assert not out.decision.passed
    row = next(r for r in out.decision.reasons if "approvals" in r)
    assert row.startswith("FAIL") and "approved other evidence" in row


def test_an_alias_set_directly_is_unverified_and_reverted(registry):
    m = registry.name
    v1, v2 = add(registry), add(registry, **{"eval/bits_per_byte": 2.9})
    assert promote(m, v1, "staging").moved
    registry.set_registered_model_alias(m, "staging", v2)  # what the UI's alias pencil does
    report = verify(f"{m}@staging")
    assert not report.ok and f"moves it to v{v1}" in report.why
    [finding] = audit_model(m, revert=True)
    assert not finding.verified and finding.reverted_to == v1
    assert str(registry.get_model_version_by_alias(m, "staging").version) == v1
    revert = history_read.events(m)[-1]
    assert revert.event == "revert" and revert.signature and f"v{v2}" in revert.reasons[0]
    assert verify(f"{m}@staging").ok and audit_model(m)[0].verified


def test_a_first_alias_set_outside_lmops_is_removed(registry):
    m = registry.name
    v = add(registry)
    registry.set_registered_model_alias(m, "production", v)  # no gate ever passed
    [finding] = audit_model(m, revert=True)
    assert finding.reverted_to == "" and "no signed promotion record" in finding.why
    assert "production" not in registry.get_registered_model(m).aliases


def test_verify_command_prints_each_check_and_exits_4(registry, tmp_path):
    m = registry.name
    v = add(registry)
    promote(m, v, "staging")
    home = tmp_path / "home"
    env = {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    ok = run_cli(["verify", f"{m}@staging"], home, timeout=180, env=env)
    assert ok.returncode == 0, ok.stderr
    for check in ("evidence signature", "model files", "tags", "promotion record"):
        assert f"ok   {check}" in ok.stdout
    registry.set_model_version_tag(m, v, "safety.toxicity_rate", "0.5")
    bad = run_cli(["verify", f"{m}/{v}"], home, timeout=180, env=env)
    assert bad.returncode == 4
    assert "FAIL tags" in bad.stdout and "safety.toxicity_rate is 0.5 on the version" in bad.stdout
    assert_clean_error(bad, "does not verify")


def _delivery(secret: str, body: bytes, delivery: str = "d-1", stamp: int | None = None):
    stamp = str(stamp or int(time.time()))
    mac = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256)
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


def test_webhook_signature_and_repeated_deliveries():
    import httpx

    body = json.dumps({"data": {"name": "m", "alias": "production", "version": "3"}}).encode()
    assert check_signature("s3cret", _delivery("s3cret", body), body) is None
    assert check_signature("other", _delivery("s3cret", body), body) == "signature does not match"
    stale = _delivery("s3cret", body, stamp=int(time.time()) - 3600)
    assert "more than 300 s away" in check_signature("s3cret", stale, body)
    receiver = WebhookReceiver("s3cret")
    try:
        headers = _delivery("s3cret", body)
        assert httpx.post(receiver.url, content=body, headers=headers).status_code == 200
        assert httpx.post(receiver.url, content=body, headers=headers).status_code == 200
        forged = {**headers, "X-MLflow-Delivery-Id": "d-2"}
        assert httpx.post(receiver.url, content=body, headers=forged).status_code == 401
    finally:
        receiver.close()
    assert receiver.todo.qsize() == 1 and receiver.repeated == 1 and receiver.refused == 1


def test_an_unsigned_version_is_refused(registry):
    mv = registry.create_model_version(registry.name, source="file:///nonexistent/model")
    with pytest.raises(Unverified, match="carries no signed evidence"):
        verify_version(registry.name, str(mv.version))
