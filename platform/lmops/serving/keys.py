"""API keys for ``lmops serve``, stored only as their sha256.

Two sources are merged: the home's ``serving/api_keys.toml``, which ``lmops keys add``
writes, and ``LMOPS_API_KEYS`` (``name:sha256hex,name:sha256hex``), for containers whose
secrets arrive as environment variables. A raw key is shown once, when it is made.

A file key may carry its own admission limits (``max_concurrent``,
``tokens_per_minute``), which replace the server's defaults for that key. A running
server reloads the file when it changes (``KeyWatcher``), so a revoked key stops
working, and an added one starts, within the watch interval, with no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lmops.errors import ConfigError
from lmops.home import home

KEY_PREFIX = "lmops-sk-"
ENV_VAR = "LMOPS_API_KEYS"
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def default_path() -> Path:
    """``<LMOPS_HOME>/serving/api_keys.toml``."""
    return home().root / "serving" / "api_keys.toml"


def hash_key(raw: str) -> str:
    """The sha256 hex digest that is stored in place of ``raw``."""
    # Plain sha256, no salt or slow KDF: keys are 256-bit random tokens, not passwords,
    # so there is no dictionary to guess from, and a fast hash keeps each request cheap.
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A new raw key: the ``lmops-sk-`` prefix (easy to spot in a leak) + 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyLimits:
    """A key's own admission limits; None keeps the server's value."""

    max_concurrent: int | None = None
    tokens_per_minute: int | None = None


LIMIT_FIELDS = ("max_concurrent", "tokens_per_minute")


@dataclass(frozen=True)
class ApiKeys:
    """The keys the server accepts: name -> sha256 hex of the raw key."""

    hashes: Mapping[str, str] = field(default_factory=dict)
    created: Mapping[str, str] = field(default_factory=dict)
    """When each file key was added (ISO 8601, UTC); keys from the environment have none."""
    limits: Mapping[str, KeyLimits] = field(default_factory=dict)
    """Per-key admission limits from the file; a key not here has the server's."""
    source: Path | None = None
    """The file these keys were read from, which a server watches; None when made in code."""

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] = os.environ) -> ApiKeys:
        """The keys in ``path`` (default: the home's file; a missing file holds none)
        plus those in ``LMOPS_API_KEYS``. A name in both sources is an error, not an
        override, so that a stale file cannot silently shadow a rotated secret."""
        path = path or default_path()
        entries = _read_file(path)
        hashes = {name: e["sha256"] for name, e in entries.items()}
        created = {name: e["created"] for name, e in entries.items() if e.get("created")}
        limits = {
            name: KeyLimits(e.get("max_concurrent"), e.get("tokens_per_minute"))
            for name, e in entries.items()
            if e.get("max_concurrent") or e.get("tokens_per_minute")
        }
        for name, digest in _parse_env(env.get(ENV_VAR, "")).items():
            if name in hashes:
                raise ConfigError(
                    f"key name '{name}' is in both {path} and {ENV_VAR}; rename or revoke one"
                )
            hashes[name] = digest
        return cls(hashes, created, limits, path)

    def verify(self, presented: str) -> str | None:
        """The name of the key ``presented`` is, or None.

        Every stored hash is compared, each in constant time, so the time taken does not
        depend on which key matched or how much of a digest agreed.
        """
        digest = hash_key(presented)
        found = None
        for name, stored in self.hashes.items():
            if hmac.compare_digest(digest, stored):
                found = name
        return found

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def empty(self) -> bool:
        """True when no key is configured in either source."""
        return not self.hashes


def add_key(name: str, path: Path | None = None, limits: KeyLimits | None = None) -> str:
    """Make a key called ``name``, store its hash in ``path`` and return the raw key.

    The raw key is returned once and kept nowhere; a lost key is revoked and replaced.
    ``limits`` are stored with it and override the server's admission defaults.
    """
    check_name(name)
    path = path or default_path()
    entries = _read_file(path)
    if name in entries:
        raise ConfigError(
            f"a key named '{name}' already exists in {path}; "
            f"revoke it first (`lmops keys revoke {name}`) or pick another name"
        )
    raw = generate_key()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    entries[name] = {"sha256": hash_key(raw), "created": created}
    for f in LIMIT_FIELDS:
        value = getattr(limits, f, None) if limits else None
        if value is not None:
            if value < 1:
                raise ConfigError(f"{f} must be a positive whole number, not {value}")
            entries[name][f] = value
    _write_file(path, entries)
    return raw


def revoke_key(name: str, path: Path | None = None) -> None:
    """Remove ``name`` from ``path``. A server watching the file refuses the key from its
    next check (``--watch-interval``); requests already admitted finish."""
    path = path or default_path()
    entries = _read_file(path)
    if name not in entries:
        where = (
            f"it comes from {ENV_VAR}; remove it there"
            if name in _parse_env(os.environ.get(ENV_VAR, ""))
            else "see `lmops keys list`"
        )
        raise ConfigError(f"no key named '{name}' in {path}; {where}")
    del entries[name]
    _write_file(path, entries)


def check_name(name: str) -> None:
    """Refuse names that would not survive TOML tables, env entries and log lines."""
    if not NAME_RULE.match(name):
        raise ConfigError(
            f"bad key name '{name}': use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def _read_file(path: Path) -> dict[str, dict]:
    """``{name: {"sha256", "created", limits...}}`` from ``path``; {} if it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML ({e}); fix or remove it") from None
    keys = data.get("keys", {})
    if set(data) - {"keys"} or not isinstance(keys, dict):
        raise ConfigError(f'{path} must hold only [keys.NAME] tables with sha256 = "..."')
    entries = {}
    for name, entry in keys.items():
        # Errors name the entry, never echo its value: it might be a raw key pasted by mistake.
        if not NAME_RULE.match(name):
            raise ConfigError(f"{path}: bad key name [keys.{json.dumps(name)}]")
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not _SHA256_HEX.match(digest.lower()):
            raise ConfigError(f"{path}: [keys.{name}] needs sha256 = 64 hex digits")
        entries[name] = {"sha256": digest.lower(), "created": str(entry.get("created", ""))}
        for f in LIMIT_FIELDS:
            value = entry.get(f)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{path}: [keys.{name}] {f} must be a positive whole number")
            entries[name][f] = value
    return entries


def _parse_env(value: str) -> dict[str, str]:
    """``name:sha256hex`` entries, comma-separated; blank entries are skipped."""
    out: dict[str, str] = {}
    for i, item in enumerate(value.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        name, sep, digest = item.partition(":")
        # Name the entry by position and name only: its value may be a raw key.
        if not sep or not NAME_RULE.match(name) or not _SHA256_HEX.match(digest.lower()):
            raise ConfigError(
                f"{ENV_VAR} entry {i} is not name:sha256hex "
                f"(64 hex digits; make one with `lmops keys add`)"
            )
        if name in out:
            raise ConfigError(f"{ENV_VAR} names key '{name}' twice")
        out[name] = digest.lower()
    return out


def _write_file(path: Path, entries: Mapping[str, Mapping]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never half."""
    lines = [
        "# API keys of `lmops serve`: the sha256 of each key. The keys themselves are",
        "# never stored. Managed by `lmops keys add|list|revoke`.",
    ]
    for name, e in sorted(entries.items()):
        # json.dumps quotes like a TOML basic string; names are ASCII by NAME_RULE.
        lines += ["", f"[keys.{json.dumps(name)}]", f'sha256 = "{e["sha256"]}"']
        if e.get("created"):
            lines.append(f"created = {json.dumps(e['created'])}")
        lines += [f"{f} = {e[f]}" for f in LIMIT_FIELDS if e.get(f)]
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600 in the target folder, so os.replace is a
    # rename on one file system and the hashes are never readable by other users.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
