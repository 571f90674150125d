"""Signed promotion records: which alias moves the promotion identity made.

Every move lmops makes (a gate that passed, a rollback, an audit's revert) is signed
by the promotion identity: model, version, alias, the holder before, the evidence
digest, the approvals counted, the policy and the time. The envelope is stored on the
move's history run (tag ``lmops.signed_record``).

An alias *verifies* when the newest record that verifies for it names its holder, and
that holder's evidence still verifies with the digest the record names. An alias set
any other way (the MLflow UI's alias pencil, ``set_registered_model_alias``) has no
such record, and an older record replayed for an earlier holder is not the newest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from model_registry import attestation, history, history_read, keys
from model_registry.attestation import Unverified

MOVES = ("gate", "rollback", "revert")


def sign_move(
    *,
    name: str,
    version: str,
    alias: str,
    from_version: str,
    evidence_digest: str,
    files_digest: str,
    event: str,
    approvals: list[dict] | None = None,
    policy_digest: str = "",
    actor: str = "",
) -> str:
    """The promotion identity's signature over one alias move."""
    predicate = {
        "model": name,
        "version": str(version),
        "alias": alias,
        "from_version": from_version or "",
        "evidence_digest": evidence_digest,
        "approvals": approvals or [],
        "event": event,
        "policy_digest": policy_digest,
        "actor": actor,
        "time": time.time(),
    }
    return attestation.sign_statement(
        f"models:/{name}/{version}",
        files_digest,
        attestation.PROMOTION_TYPE,
        predicate,
        keys.PROMOTION,
    )


@dataclass(frozen=True)
class SignedMove:
    version: str
    alias: str
    evidence_digest: str
    time: float
    event: history.Event
    keyid: str


def verify_record(ev: history.Event) -> SignedMove:
    """The signed move an event carries, checked against the trusted promotion keys."""
    what = f"{ev.model} @{ev.alias} record of {ev.when}"
    if not ev.signature:
        raise Unverified(f"{what}: not signed")
    v = attestation.verify_statement(ev.signature, attestation.PROMOTION_TYPE, keys.PROMOTION, what)
    p = v.predicate
    if p.get("model") != ev.model or p.get("alias") != ev.alias:
        raise Unverified(f"{what}: the signature is for {p.get('model')} @{p.get('alias')}")
    return SignedMove(
        str(p["version"]), p["alias"], p["evidence_digest"], float(p["time"]), ev, v.keyid
    )


def signed_moves(name: str, alias: str) -> tuple[list[SignedMove], list[str]]:
    """Every verifying move of ``alias``, newest first, and why the others did not verify."""
    good, bad = [], []
    for ev in history_read.events(name):
        if ev.alias != alias or ev.event not in MOVES or not ev.to_version or not ev.passed:
            continue
        try:
            good.append(verify_record(ev))
        except Unverified as e:
            bad.append(str(e))
    good.sort(key=lambda m: m.time, reverse=True)
    return good, bad


def latest_signed_move(name: str, alias: str) -> SignedMove | None:
    good, _ = signed_moves(name, alias)
    return good[0] if good else None


def check_holder(name: str, alias: str, version: str) -> SignedMove:
    """The record that makes ``version`` the verified holder of ``alias``; raises otherwise."""
    latest = latest_signed_move(name, alias)
    if latest is None:
        raise Unverified(
            f"{name} @{alias} -> v{version}: no signed promotion record moves the alias "
            "(set outside lmops)"
        )
    if latest.version != str(version):
        raise Unverified(
            f"{name} @{alias} is on v{version}, but the latest signed promotion record "
            f"({latest.event.when}) moves it to v{latest.version}: the alias was set outside lmops"
        )
    return latest
