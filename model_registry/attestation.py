"""Signed statements: in-toto Statement v1 in a DSSE envelope, and model-file signatures.

Two kinds of signature, both made with the keys of :mod:`model_registry.keys`:

- a model's files are hashed and signed by OpenSSF ``model-signing`` (a Sigstore
  bundle around an in-toto statement whose subject digests every file), so any
  ``model_signing verify key`` can check them too;
- lmops' own statements (a version's evidence, an alias move) are in-toto v1
  statements built with ``in-toto-attestation`` and signed into DSSE envelopes by
  ``securesystemslib``. Nothing here implements a cipher or an encoding of its own.

A statement's digest (sha256 of its signed payload) is how approvals and promotion
records name the evidence they were about.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

from lmops.errors import LmopsError
from model_registry import keys

PAYLOAD_TYPE = "application/vnd.in-toto+json"
EVIDENCE_TYPE = "https://lmops.dev/attestations/evidence/v1"
PROMOTION_TYPE = "https://lmops.dev/attestations/promotion/v1"


class Unverified(LmopsError):
    """A signature, a digest or a signed field does not check out; the message says which."""

    exit_code = 4


@dataclass(frozen=True)
class Verified:
    statement: dict
    keyid: str
    key_name: str
    digest: str  # sha256 of the signed payload, 32 hex characters

    @property
    def predicate(self) -> dict:
        return self.statement["predicate"]

    @property
    def subject(self) -> dict:
        return self.statement["subject"][0]


def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:32]


def envelope_digest(text: str) -> str:
    """The digest of an envelope's payload, without checking who signed it."""
    return payload_digest(base64.b64decode(json.loads(text)["payload"]))


def sign_statement(
    subject: str, sha256: str, predicate_type: str, predicate: dict, role: str
) -> str:
    """A DSSE envelope (JSON text) over one in-toto statement, signed for ``role``."""
    stmt = Statement(
        [ResourceDescriptor(name=subject, digest={"sha256": sha256}).pb], predicate_type, predicate
    )
    stmt.validate()
    payload = json_format.MessageToJson(stmt.pb, sort_keys=True, indent=None).encode()
    env = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    env.sign(keys.signer(role))
    return json.dumps(env.to_dict(), sort_keys=True)


def verify_statement(text: str, predicate_type: str, role: str, what: str) -> Verified:
    """Check an envelope against the keys trusted for ``role``; returns the statement."""
    try:
        env = Envelope.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        raise Unverified(f"{what}: the signed statement is not a DSSE envelope ({e})") from None
    if env.payload_type != PAYLOAD_TYPE:
        raise Unverified(f"{what}: payload type {env.payload_type!r}, not {PAYLOAD_TYPE}")
    trusted = keys.trusted(role)
    if not trusted:
        raise Unverified(f"{what}: {keys.trust_file()} trusts no key for {role}")
    try:
        accepted = env.verify([t.key for t in trusted], 1)
    except VerificationError:
        ids = ", ".join(k[:12] for k in env.signatures) or "none"
        raise Unverified(
            f"{what}: signed by key {ids}, which {keys.trust_file()} does not trust for {role}"
        ) from None
    keyid = next(iter(accepted))
    statement = json.loads(env.payload)
    if statement.get("predicateType") != predicate_type:
        raise Unverified(f"{what}: a {statement.get('predicateType')} statement, not evidence")
    name = next(t.name for t in trusted if t.keyid == keyid)
    return Verified(statement, keyid, name, payload_digest(env.payload))


# --- the model's files (model-signing) -------------------------------------------------


def sign_model_files(model_dir: Path) -> tuple[str, str]:
    """Sign every file under ``model_dir``; returns (bundle JSON, root sha256 of the files)."""
    from model_signing import hashing, signing

    # BLAKE3 rather than model-signing's default SHA-256: 4x faster on a 500 MB weights
    # file on 2 cores (benchmarks/signing_speed.py), and a verifier reads the algorithm
    # from the signature, so `model_signing verify key` checks it unchanged.
    config = hashing.Config().use_file_serialization(hashing_algorithm="blake3")
    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp) / "model.sig"
        key = keys.key_file_for(keys.EVIDENCE)
        signer = signing.Config().set_hashing_config(config)
        signer.use_elliptic_key_signer(private_key=key).sign(model_dir, sig)
        bundle = sig.read_text()
    return bundle, files_digest(bundle)


def _bundle_statement(bundle: str) -> dict:
    try:
        env = json.loads(bundle)["dsseEnvelope"]
        return json.loads(base64.b64decode(env["payload"]))
    except (ValueError, KeyError, TypeError) as e:
        raise Unverified(f"the model-signing bundle cannot be read ({e})") from None


def files_digest(bundle: str) -> str:
    """The root digest model-signing computed over all files (its statement's subject)."""
    return _bundle_statement(bundle)["subject"][0]["digest"]["sha256"]


def _key_hint(pem: str) -> str:
    """model-signing names the key by sha256 of its PEM (SubjectPublicKeyInfo)."""
    raw = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(raw).hexdigest()


def verify_model_files(model_dir: Path, bundle: str, what: str) -> None:
    """The files under ``model_dir`` are the ones the trusted pipeline key signed."""
    from model_signing import verifying

    hint = json.loads(bundle).get("verificationMaterial", {}).get("publicKey", {}).get("hint")
    candidates = [
        t for t in keys.trusted(keys.EVIDENCE) if _key_hint(keys.public_pem(t.key)) == hint
    ]
    if not candidates:
        raise Unverified(
            f"{what}: the model files were signed by a key the trust file does not list"
        )
    with tempfile.TemporaryDirectory() as tmp:
        sig, pub = Path(tmp) / "model.sig", Path(tmp) / "key.pub"
        sig.write_text(bundle)
        pub.write_text(keys.public_pem(candidates[0].key))
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(model_dir, sig)
        except ValueError as e:
            raise Unverified(
                f"{what}: the model files differ from the signed ones: {_first(e)}"
            ) from None
        except Exception as e:  # a bad signature surfaces as cryptography's InvalidSignature
            raise Unverified(
                f"{what}: the model files' signature does not verify ({type(e).__name__})"
            ) from None


def _first(e: Exception) -> str:
    """model-signing lists every difference; the first names the file."""
    text = str(e).removeprefix("Signature mismatch: ")
    text = text.strip("[]").split('", "')[0].split("', '")[0].strip("'\"")
    return text[:300]
