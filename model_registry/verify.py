"""Verify a version or an alias holder, one check at a time.

``lmops verify``, ``lmops serve`` (before it swaps) and the ``registry-audit`` flow all
ask the same question: may this version be served under this alias? The answer is a
list of checks, each with what it found, so a refusal names the first one that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lmops.errors import LmopsError
from model_registry import promotion_records, signed_evidence
from model_registry.attestation import Unverified
from model_registry.versions import get_version, holder


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    model: str
    version: str | None
    alias: str = ""
    checks: list[Check] = field(default_factory=list)
    evidence: signed_evidence.SignedEvidence | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def why(self) -> str:
        return next((c.detail for c in self.checks if not c.ok), "")


def parse_ref(ref: str) -> tuple[str, str | None, str]:
    """``NAME@ALIAS`` or ``NAME/VERSION`` (``models:/`` optional) → (name, version, alias)."""
    body = ref.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, _, version = body.rpartition("/")
    if not name or not version:
        raise LmopsError(f"'{ref}': give NAME@ALIAS or NAME/VERSION")
    return name, version, ""


def verify(ref: str, files: Path | None = None, check_files: bool = True) -> Report:
    """Every check for ``ref``; an alias also needs the newest signed record to name its holder."""
    name, version, alias = parse_ref(ref)
    if alias:
        version = holder(name, alias)
        if version is None:
            return Report(name, None, alias, [Check("alias", False, f"{name} has no @{alias}")])
    report = Report(name, version, alias)

    def step(label: str, fn) -> bool:
        try:
            detail = fn() or "ok"
        except Unverified as e:
            report.checks.append(Check(label, False, str(e)))
            return False
        report.checks.append(Check(label, True, detail))
        return True

    mv = get_version(name, version)
    state: dict = {}

    def statement() -> str:
        state["v"], state["bundle"] = signed_evidence.signed_statement(mv)
        v = state["v"]
        return f"signed by key {v.keyid[:12]} ({v.key_name}), digest {v.digest}"

    def files_() -> str:
        signed_evidence.check_files(mv, state["bundle"], files)
        return "the files in the artifact store are the signed ones"

    def tags() -> str:
        signed_evidence.check_tags(mv, state["v"])
        return "every evidence and lineage tag matches the signed statement"

    if not step("evidence signature", statement):
        return report
    if check_files and not step("model files", files_):
        return report
    if not step("tags", tags):
        return report
    report.evidence = signed_evidence.from_statement(state["v"])
    if alias:

        def record() -> str:
            move = promotion_records.check_holder(name, alias, version)
            if move.evidence_digest != report.evidence.digest:
                raise Unverified(
                    f"{name} v{version}: its evidence changed after the move to @{alias} "
                    f"(signed {move.evidence_digest}, now {report.evidence.digest})"
                )
            return f"{move.event.event} of {move.event.when} by {move.event.actor}, signed"

        step("promotion record", record)
    return report


def last_verified_holder(name: str, alias: str) -> str | None:
    """The version the newest signed record moves ``alias`` to, if its evidence verifies."""
    move = promotion_records.latest_signed_move(name, alias)
    if move is None:
        return None
    try:
        signed = signed_evidence.verify_version(name, move.version)
    except LmopsError:
        return None
    return move.version if signed.digest == move.evidence_digest else None


def _before_download(ref: str) -> tuple[Report, str, str]:
    """Signature, tags and (for an alias) the signed move: (report, source, file bundle)."""
    from model_registry import attestation
    from model_registry import tags as T

    report = verify(ref, check_files=False)
    if not report.ok:
        raise Unverified(report.why)
    mv = get_version(report.model, report.version)
    bundle = mv.tags.get(T.MODEL_SIGNATURE, "")
    if not bundle or attestation.files_digest(bundle) != report.evidence.files_digest:
        raise Unverified(f"{report.model} v{report.version}: the file signature changed")
    return report, mv.source, bundle


def verified_download(ref: str, dst: Path) -> tuple[str, str, Path]:
    """Download what ``ref`` names into ``dst`` only if it verifies; (name, version, files).

    The signature, tags and (for an alias) promotion record are checked first, so a
    refused move costs no download; then the downloaded files are checked against the
    file signature the evidence binds.
    """
    from model_registry import attestation

    report, source, bundle = _before_download(ref)
    files = signed_evidence.download(source, dst)
    attestation.verify_model_files(files, bundle, f"{report.model} v{report.version}")
    return report.model, str(report.version), files


def load_verified(ref: str, dst: Path, load):
    """(name, version, ``load(files, name, version)``) for what ``ref`` names, if it verifies.

    As :func:`verified_download`, but the files are hashed while ``load`` reads them
    (both from the same local copy), so verifying costs a swap only the time hashing
    takes beyond loading. What ``load`` built is closed and nothing is returned when
    the files do not verify.
    """
    from concurrent.futures import ThreadPoolExecutor

    from model_registry import attestation

    report, source, bundle = _before_download(ref)
    name, version = report.model, str(report.version)
    files = signed_evidence.download(source, dst)
    with ThreadPoolExecutor(1, thread_name_prefix="verify-files") as pool:
        check = pool.submit(attestation.verify_model_files, files, bundle, f"{name} v{version}")
        try:
            loaded = load(files, name, version)
        except BaseException:
            check.cancel()
            raise
        try:
            check.result()
        except BaseException:
            close = getattr(loaded, "close", None)
            if close is not None:
                close()
            raise
    return name, version, loaded
