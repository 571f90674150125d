"""Signing keys and the trust file: who may sign evidence and promotion records.

Two identities sign (docs/promotion.md, "Trust chain"):

- the **pipeline** signs a version's evidence when it evaluates and registers it;
- the **promotion identity** signs each alias move the gate allows.

Each signs with an ECDSA P-256 private key in a PEM file: ``LMOPS_SIGNING_KEY`` and
``LMOPS_PROMOTION_KEY`` name them (a Kubernetes Secret mounted as a file, see
``infra/k8s``). Without them both use ``LMOPS_HOME/keys/signing.pem``, created with
mode 0600 on first use: on a laptop one person is both identities.

Verifiers (the gate, ``lmops verify``, ``lmops serve``, the registry audit) trust the
public keys listed in the trust file, ``LMOPS_TRUST_FILE`` or
``LMOPS_HOME/keys/trusted.toml``. Each entry names the roles it is trusted for;
listing two keys for one role is how a key is rotated (sign with the new one, drop
the old one once nothing it signed is still served).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, SSlibKey

from lmops.errors import LmopsError

SIGNING_KEY_ENV = "LMOPS_SIGNING_KEY"
PROMOTION_KEY_ENV = "LMOPS_PROMOTION_KEY"
TRUST_FILE_ENV = "LMOPS_TRUST_FILE"
EVIDENCE, PROMOTION = "evidence", "promotion"
ROLES = (EVIDENCE, PROMOTION)
KEY_ENV = {EVIDENCE: SIGNING_KEY_ENV, PROMOTION: PROMOTION_KEY_ENV}


def keys_dir() -> Path:
    from lmops.home import home

    return home().root / "keys"


def default_key_path() -> Path:
    return keys_dir() / "signing.pem"


def trust_file() -> Path:
    env = os.environ.get(TRUST_FILE_ENV)
    return Path(env) if env else keys_dir() / "trusted.toml"


@dataclass(frozen=True)
class TrustedKey:
    key: SSlibKey
    roles: tuple[str, ...]
    name: str  # a label for people ("pipeline 2026-12", "promoter")

    @property
    def keyid(self) -> str:
        return self.key.keyid


def public_pem(key: SSlibKey) -> str:
    return key.keyval["public"]


def write_new_key(path: Path) -> None:
    """A new P-256 key, written 0600 through a temporary name so no reader sees half."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    try:
        os.link(tmp, path)  # fails if another process created the key first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _trust_entry(key: SSlibKey, roles: tuple[str, ...], name: str) -> str:
    # JSON strings and arrays of strings are valid TOML, and quote a name safely.
    return (
        f"\n[[keys]]\nname = {json.dumps(name)}\nroles = {json.dumps(list(roles))}\n"
        f"keyid = {json.dumps(key.keyid)}\npublic_key = '''\n{public_pem(key).strip()}\n'''\n"
    )


def add_trusted(key: SSlibKey, roles: tuple[str, ...], name: str, path: Path | None = None) -> Path:
    """Append ``key`` to the trust file (created if missing); a listed key is left as is."""
    path = path or trust_file()
    if path.exists() and key.keyid in {t.keyid for t in load_trusted(path)}:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "" if path.exists() else _TRUST_HEADER
    with path.open("a") as f:
        f.write(head + _trust_entry(key, roles, name))
    _cached_trust.cache_clear()
    return path


_TRUST_HEADER = """\
# Public keys lmops trusts (model_registry/keys.py). Each [[keys]] entry lists the
# roles it may sign for: "evidence" (the pipeline) and "promotion" (alias moves).
# Two keys for one role at once is how a key is rotated.
"""


def _key_path(role: str) -> tuple[Path, bool]:
    env = os.environ.get(KEY_ENV[role]) or (
        os.environ.get(SIGNING_KEY_ENV) if role == PROMOTION else None
    )
    return (Path(env), False) if env else (default_key_path(), True)


def signer(role: str) -> CryptoSigner:
    """The private key that signs for ``role``; the home's default key is made on first use.

    A key made here is added to the home's trust file for both roles (on an embedded
    home the one user is pipeline and promotion identity at once), never to a trust
    file that ``LMOPS_TRUST_FILE`` names: that one is the deployer's to edit.
    """
    path, is_default = _key_path(role)
    if not path.exists():
        if not is_default:
            raise LmopsError(
                f"{KEY_ENV[role]} names {path}, which does not exist; mount the signing key "
                "there (infra/k8s/signing-keys.yaml) or unset it to use the home's key"
            )
        write_new_key(path)
        if not os.environ.get(TRUST_FILE_ENV):  # a configured trust file is the deployer's
            add_trusted(_load_signer(path).public_key, ROLES, "this home's signing key")
    elif is_default and path.stat().st_mode & 0o077:
        raise LmopsError(f"{path} is readable by others; run `chmod 600 {path}`")
    return _load_signer(path)


def _load_signer(path: Path) -> CryptoSigner:
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise LmopsError(f"{path} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise LmopsError(f"{path} is not an elliptic-curve key (model-signing needs one)")
    return CryptoSigner(private)


def key_file_for(role: str) -> Path:
    """The PEM file of ``role``'s private key (model-signing reads keys from files)."""
    signer(role)  # creates the default key if needed
    return _key_path(role)[0]


def load_trusted(path: Path | None = None) -> list[TrustedKey]:
    """Every key of the trust file; a missing file trusts nothing."""
    path = path or trust_file()
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LmopsError(f"trust file {path} is not valid TOML: {e}") from None
    out = []
    for i, entry in enumerate(data.get("keys", [])):
        try:
            key = SSlibKey.from_crypto(
                serialization.load_pem_public_key(entry["public_key"].encode())
            )
            roles = tuple(entry.get("roles", ()))
        except (KeyError, ValueError) as e:
            raise LmopsError(f"trust file {path}: entry {i + 1} is not a public key: {e}") from None
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise LmopsError(
                f"trust file {path}: unknown role(s) {sorted(unknown)} in entry {i + 1}"
            )
        out.append(TrustedKey(key, roles, entry.get("name", f"key {i + 1}")))
    return out


@lru_cache(maxsize=8)
def _cached_trust(path: str, mtime: float) -> tuple[TrustedKey, ...]:
    return tuple(load_trusted(Path(path)))


def trusted(role: str) -> list[TrustedKey]:
    """Keys trusted for ``role``; re-read when the trust file changes."""
    path = trust_file()
    if not path.exists():
        return []
    return [t for t in _cached_trust(str(path), path.stat().st_mtime) if role in t.roles]
