"""The registry audit: every alias of every model must be held by a verified move.

MLflow lets anyone with EDIT on a model move an alias (the UI's pencil, the client's
``set_registered_model_alias``); a webhook about it fires after the move, so it can
only be undone, not vetoed. :func:`audit_model` checks each alias with
:func:`model_registry.verify.verify` and, with ``revert``, moves an unverified one back
to its last verified holder (or removes it when there is none), as a signed
``revert`` move in the history.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError
from model_registry import history
from model_registry.alias_lock import alias_lock
from model_registry.history_section import refresh_history_section
from model_registry.identity import current_identity
from model_registry.promotion_records import sign_move
from model_registry.signed_evidence import verify_version
from model_registry.verify import last_verified_holder, verify

log = logging.getLogger("lmops.audit")
LOCK_PREFIX = "lmops-lock."


@dataclass(frozen=True)
class Finding:
    model: str
    alias: str
    version: str
    verified: bool
    why: str = ""
    reverted_to: str | None = None  # "" when the alias was removed (no verified holder)

    def line(self) -> str:
        if self.verified:
            return f"ok   {self.model} @{self.alias} v{self.version}"
        done = ""
        if self.reverted_to is not None:
            done = f"; reverted to v{self.reverted_to}" if self.reverted_to else "; alias removed"
        return f"FAIL {self.model} @{self.alias} v{self.version}: {self.why}{done}"


def models() -> list[str]:
    client = MlflowClient()
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=200, page_token=token)
        names += [m.name for m in page if not m.name.startswith(LOCK_PREFIX)]
        token = page.token
        if not token:
            return names


def aliases(name: str) -> dict[str, str]:
    try:
        return dict(MlflowClient().get_registered_model(name).aliases or {})
    except MlflowException:
        return {}


def audit_model(name: str, revert: bool = False, files: bool = False) -> list[Finding]:
    """Check each alias of ``name``; ``files`` also re-hashes each holder's files.

    Files are left out by default: a pass then costs a few registry reads per alias
    whatever the model's size, and a server hashes the files it loads anyway.
    """
    out = []
    for alias, version in sorted(aliases(name).items()):
        report = verify(f"{name}@{alias}", check_files=files)
        if report.ok:
            out.append(Finding(name, alias, str(version), True))
            continue
        finding = Finding(name, alias, str(version), False, report.why)
        if revert:
            finding = _revert(finding)
        log.warning(finding.line())
        out.append(finding)
    return out


def audit_all(revert: bool = False, files: bool = False) -> list[Finding]:
    return [f for name in models() for f in audit_model(name, revert, files)]


def _revert(f: Finding) -> Finding:
    """Move the alias back to its last verified holder, signed and recorded."""
    who = current_identity()
    client = MlflowClient()
    with alias_lock(f.model, f.alias, who.name):
        now = str(client.get_model_version_by_alias(f.model, f.alias).version)
        if now != f.version:  # moved again meanwhile: the next pass looks at it afresh
            return f
        target = last_verified_holder(f.model, f.alias)
        why = f"reverted an unverified move of @{f.alias} to v{f.version}: {f.why}"
        signature, digest = "", ""
        if target:
            signed = verify_version(f.model, target)
            digest = signed.digest
            signature = sign_move(
                name=f.model,
                version=target,
                alias=f.alias,
                from_version=f.version,
                evidence_digest=digest,
                files_digest=signed.files_digest,
                event="revert",
                actor=who.name,
            )
        history.record(
            history.Event(
                event="revert",
                model=f.model,
                version=target or f.version,
                alias=f.alias,
                actor=who.name,
                verified=who.verified,
                from_version=f.version,
                to_version=target or "",
                reasons=(why,),
                evidence_digest=digest,
                signature=signature,
            )
        )
        try:
            if target:
                client.set_registered_model_alias(f.model, f.alias, target)
            else:
                client.delete_registered_model_alias(f.model, f.alias)
        except MlflowException as e:
            raise LmopsError(
                f"the registry refused to revert {f.model} @{f.alias}: {e.message}"
            ) from None
    for v in {f.version, target} - {None, ""}:
        with suppress(MlflowException):  # a convenience: the history run is the record
            refresh_history_section(f.model, v)
    return Finding(f.model, f.alias, f.version, False, f.why, target or "")
