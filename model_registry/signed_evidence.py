"""A version's signed evidence: what the pipeline signs, and what every gate checks.

When the pipeline registers (or re-evaluates) a version it downloads the version's
files from the artifact store, signs them with model-signing, and signs one in-toto
statement whose subject is ``models:/NAME/VERSION`` with the files' root digest and
whose predicate binds the evaluation evidence and eval set, the dataset version and
its validation result, the training run, config digest, code commit, parent model
and the author. The envelope and the file signature are version tags; the other tags
are the copy people read, and :func:`verify_version` refuses a version whose copy
differs from what was signed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from model_registry import attestation, keys
from model_registry import tags as T
from model_registry.attestation import Unverified
from model_registry.evidence import evidence_tags
from model_registry.versions import get_version

# Lineage tags the statement binds: tag -> predicate key.
BOUND = {
    T.DATASET_VERSION: "dataset_version",
    T.DATA_VALIDATION: "data_validation",
    T.MLFLOW_RUN: "training_run",
    T.CONFIG_DIGEST: "config_digest",
    T.CODE_COMMIT: "code_commit",
    T.PARENT_MODEL: "parent_model",
    T.EVAL_SET: "eval_set",
}


@dataclass(frozen=True)
class Author:
    name: str
    verified: bool
    source: str  # "lmops-auth server" | "mlflow basic-auth" | "local, no authentication"


@dataclass(frozen=True)
class SignedEvidence:
    """The gate's inputs, taken from the signed statement and nowhere else."""

    metrics: dict[str, float]
    eval_set: str
    data_validation_passed: bool | None
    author: Author
    digest: str  # of the signed statement: what approvals and records name
    predicate: dict
    keyid: str
    files_digest: str  # model-signing's root sha256 over the version's files


def download(source: str, dst: Path) -> Path:
    import os

    import mlflow

    # A progress bar per check is noise in a gate's or a server's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))
    except Exception as e:  # the artifact store is down or the files are gone
        raise Unverified(f"cannot download the model files from {source}: {e}") from None


def author_of(mv) -> Author:
    """Who created the version, as the server recorded it where it can."""
    from model_registry.identity import current_identity

    server = (mv.tags or {}).get(T.SERVER_CREATED_BY)
    if server:
        return Author(server, True, "lmops-auth server")
    who = current_identity()
    return Author(who.name, who.verified, who.source)


def sign_version(
    name: str,
    version: str,
    metrics: dict[str, float],
    eval_set: str,
    lineage: dict[str, str],
    author: Author | None = None,
) -> dict[str, str]:
    """Sign the version's files and evidence; set the tags; returns the tags set."""
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    author = author or author_of(mv)
    with tempfile.TemporaryDirectory() as tmp:
        files = download(mv.source, Path(tmp))
        bundle, root = attestation.sign_model_files(files)
    evidence = evidence_tags(metrics)
    predicate = {
        "model": name,
        "version": str(version),
        "source": mv.source,
        "evidence": evidence,
        "author": {"name": author.name, "verified": author.verified, "source": author.source},
        "signed_at": time.time(),
        **{key: lineage.get(tag, "") for tag, key in BOUND.items() if tag != T.EVAL_SET},
        "eval_set": eval_set,
    }
    envelope = attestation.sign_statement(
        f"models:/{name}/{version}", root, attestation.EVIDENCE_TYPE, predicate, keys.EVIDENCE
    )
    digest = attestation.envelope_digest(envelope)
    tags = {
        **evidence,
        **{t: v for t, v in lineage.items() if t in BOUND and v},
        T.EVAL_SET: eval_set,
        T.REGISTERED_BY: author.name,
        T.EVIDENCE_DIGEST: digest,
        T.MODEL_SIGNATURE: bundle,
        T.SIGNED_EVIDENCE: envelope,
    }
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, v)
    return tags


def resign(name: str, version: str, metrics: dict[str, float], eval_set: str) -> dict[str, str]:
    """New evidence for a version whose current statement verifies; its lineage carries over.

    A version without verifying evidence is refused: re-signing it would launder
    whatever its tags say.
    """
    old = verify_version(name, version)
    lineage = {tag: str(old.predicate.get(key) or "") for tag, key in BOUND.items()}
    return sign_version(name, version, metrics, eval_set, lineage, old.author)


def signed_statement(mv) -> tuple[attestation.Verified, str]:
    """The version's evidence statement, its signature checked, and its file signature."""
    label = f"{mv.name} v{mv.version}"
    tags = dict(mv.tags)
    envelope = tags.get(T.SIGNED_EVIDENCE)
    if not envelope:
        raise Unverified(
            f"{label} carries no signed evidence; it was not registered by the lmops pipeline "
            f"(re-register it with `lmops run`, or sign new evidence with "
            f"`lmops evaluate models:/{mv.name}/{mv.version} --attach` if its evidence "
            "verified before)"
        )
    v = attestation.verify_statement(envelope, attestation.EVIDENCE_TYPE, keys.EVIDENCE, label)
    if v.subject.get("name") != f"models:/{mv.name}/{mv.version}":
        raise Unverified(
            f"{label}: the signed evidence is for {v.subject.get('name')}, not this version"
        )
    bundle = tags.get(T.MODEL_SIGNATURE, "")
    if not bundle or attestation.files_digest(bundle) != v.subject["digest"]["sha256"]:
        raise Unverified(
            f"{label}: {T.MODEL_SIGNATURE} is not the file signature the evidence binds"
        )
    return v, bundle


def check_files(mv, bundle: str, files: Path | None = None) -> None:
    """The files in the artifact store (or ``files``, already downloaded) are the signed ones."""
    label = f"{mv.name} v{mv.version}"
    if files is not None:
        attestation.verify_model_files(files, bundle, label)
        return
    with tempfile.TemporaryDirectory() as tmp:
        attestation.verify_model_files(download(mv.source, Path(tmp)), bundle, label)


def check_tags(mv, v: attestation.Verified) -> None:
    diff = first_difference(dict(mv.tags), v.predicate, v.digest)
    if diff:
        raise Unverified(f"{mv.name} v{mv.version}: {diff}")


def verify_version(name: str, version: str, files: Path | None = None, check_files_: bool = True):
    """Check signature, files and tags of ``name`` v``version``; returns :class:`SignedEvidence`.

    ``files``: the version's files already downloaded (a server about to load them);
    otherwise they are downloaded from the artifact store. Raises :class:`Unverified`
    with one line naming the first difference.
    """
    mv = get_version(name, version)
    v, bundle = signed_statement(mv)
    if check_files_:
        check_files(mv, bundle, files)
    check_tags(mv, v)
    return from_statement(v)


def from_statement(v: attestation.Verified) -> SignedEvidence:
    p = v.predicate
    validation = p.get("data_validation") or None
    author = p.get("author") or {}
    return SignedEvidence(
        metrics={k.replace(".", "/", 1): float(x) for k, x in p["evidence"].items()},
        eval_set=p["eval_set"],
        data_validation_passed=None if validation is None else validation == "passed",
        author=Author(
            author.get("name", ""), bool(author.get("verified")), author.get("source", "")
        ),
        digest=v.digest,
        predicate=p,
        keyid=v.keyid,
        files_digest=v.subject["digest"]["sha256"],
    )


def first_difference(tags: dict[str, str], predicate: dict, digest: str) -> str | None:
    """The first tag whose value is not what was signed, in words; None when all agree."""
    signed = dict(predicate.get("evidence") or {})
    for tag, key in BOUND.items():
        signed[tag] = str(predicate.get(key) or "")
    signed[T.REGISTERED_BY] = (predicate.get("author") or {}).get("name", "")
    signed[T.EVIDENCE_DIGEST] = digest
    for tag, want in sorted(signed.items()):
        got = tags.get(tag)
        if got is None and want == "":
            continue
        if got is None:
            return f"{tag} is missing on the version, {want} in the signed evidence"
        if got != want:
            return f"{tag} is {got} on the version, {want or '(empty)'} in the signed evidence"
    extra = sorted(t for t in tags if t.split(".", 1)[0] in T.EVIDENCE_FAMILIES and t not in signed)
    if extra:
        return f"{extra[0]} is {tags[extra[0]]} on the version but not in the signed evidence"
    return None
