"""API keys: only hashes on disk, exact verification, both sources, clean errors."""

from __future__ import annotations

import re
import stat

import pytest

from conftest import assert_clean_error, run_cli
from lmops.errors import ConfigError
from lmops.serving.keys import (
    KEY_PREFIX,
    ApiKeys,
    add_key,
    default_path,
    generate_key,
    hash_key,
    revoke_key,
)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / ".lmops"))
    monkeypatch.delenv("LMOPS_API_KEYS", raising=False)
    return tmp_path / ".lmops"


def test_file_holds_the_hash_never_the_key(home):
    raw = add_key("alice")
    assert raw.startswith(KEY_PREFIX) and len(raw) > len(KEY_PREFIX) + 40
    assert default_path() == home / "serving" / "api_keys.toml"
    text = default_path().read_text()
    assert raw not in text and raw[len(KEY_PREFIX) :] not in text
    assert hash_key(raw) in text
    assert ApiKeys.load().verify(raw) == "alice"


def test_wrong_keys_are_rejected():
    raw = add_key("alice")
    keys = ApiKeys.load()
    for wrong in (raw + "x", raw[:-1], "", generate_key(), hash_key(raw)):
        assert keys.verify(wrong) is None
    digest = hash_key(raw)
    near = ApiKeys({"near": digest[:-1] + ("0" if digest[-1] != "0" else "1")})
    assert near.verify(raw) is None  # the whole digest is compared, not a prefix


def test_each_key_maps_to_its_own_name():
    a, b = add_key("alice"), add_key("bob.ci-1")
    keys = ApiKeys.load()
    assert (keys.verify(a), keys.verify(b), len(keys)) == ("alice", "bob.ci-1", 2)
    assert not keys.empty


def test_no_keys_is_empty():
    keys = ApiKeys.load()
    assert keys.empty and len(keys) == 0 and keys.verify("anything") is None


def test_file_is_private_and_written_whole(home):
    add_key("alice")
    add_key("bob")
    path = default_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_env_keys(tmp_path):
    raw_ci, raw_ops = generate_key(), generate_key()
    env = {"LMOPS_API_KEYS": f" ci:{hash_key(raw_ci)}, ops:{hash_key(raw_ops).upper()},"}
    keys = ApiKeys.load(tmp_path / "none.toml", env=env)
    assert (keys.verify(raw_ci), keys.verify(raw_ops), len(keys)) == ("ci", "ops", 2)
    assert keys.created == {}


def test_env_and_file_merge_but_a_name_in_both_is_refused():
    raw_file, raw_env = add_key("alice"), generate_key()
    keys = ApiKeys.load(env={"LMOPS_API_KEYS": f"ci:{hash_key(raw_env)}"})
    assert (keys.verify(raw_file), keys.verify(raw_env)) == ("alice", "ci")
    with pytest.raises(ConfigError, match="'alice' is in both"):
        ApiKeys.load(env={"LMOPS_API_KEYS": f"alice:{hash_key(raw_env)}"})


@pytest.mark.parametrize(
    "value, needle",
    [
        ("ci", "entry 1 is not name:sha256hex"),
        (f"ok:{'a' * 64},ci:lmops-sk-SECRET", "entry 2 is not name:sha256hex"),
        (f"ci:{'a' * 63}", "entry 1"),
        (f"bad name:{'a' * 64}", "entry 1"),
        (f"ci:{'a' * 64},ci:{'b' * 64}", "names key 'ci' twice"),
    ],
)
def test_malformed_env_entries(value, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        ApiKeys.load(env={"LMOPS_API_KEYS": value})
    assert "SECRET" not in str(e.value)  # a raw key pasted by mistake is not echoed
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[keys.alice\n", "not valid TOML"),
        ("[keys.alice]\ncreated = 'x'\n", "[keys.alice] needs sha256"),
        ("[keys.alice]\nsha256 = 'lmops-sk-SECRET'\n", "[keys.alice] needs sha256"),
        ("[keys.'bad name']\nsha256 = '" + "a" * 64 + "'\n", "bad key name"),
        ("[other]\nx = 1\n", "must hold only [keys.NAME] tables"),
        ("keys = 3\n", "must hold only"),
    ],
)
def test_malformed_file(tmp_path, text, needle):
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(needle)) as e:
        ApiKeys.load(path, env={})
    assert str(path) in str(e.value) and "SECRET" not in str(e.value)


@pytest.mark.parametrize("name", ["", "-x", ".x", "a b", "a/b", "a:b", "ü"])
def test_bad_names_refused(name):
    with pytest.raises(ConfigError, match="bad key name"):
        add_key(name)
    assert not default_path().exists()


def test_duplicate_name_refused_and_first_key_kept():
    raw = add_key("alice")
    with pytest.raises(ConfigError, match="already exists"):
        add_key("alice")
    assert ApiKeys.load().verify(raw) == "alice"


def test_revoke(tmp_path):
    path = tmp_path / "custom" / "keys.toml"
    a, b = add_key("alice", path), add_key("bob", path)
    revoke_key("alice", path)
    keys = ApiKeys.load(path, env={})
    assert (keys.verify(a), keys.verify(b)) == (None, "bob")
    with pytest.raises(ConfigError, match="no key named 'alice'"):
        revoke_key("alice", path)


def test_revoking_an_env_key_says_where_it_lives(monkeypatch):
    monkeypatch.setenv("LMOPS_API_KEYS", f"ci:{'a' * 64}")
    with pytest.raises(ConfigError, match="comes from LMOPS_API_KEYS"):
        revoke_key("ci")


def test_cli_add_twice_and_revoke_unknown_are_clean_errors(home):
    env = {"LMOPS_API_KEYS": ""}
    proc = run_cli(["keys", "add", "alice"], home, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(KEY_PREFIX)  # stdout is the key alone
    assert "not stored" in proc.stderr
    assert_clean_error(run_cli(["keys", "add", "alice"], home, timeout=60, env=env), "exists")
    assert_clean_error(run_cli(["keys", "add", "a/b"], home, timeout=60, env=env), "bad key")
    proc = run_cli(["keys", "revoke", "bob"], home, timeout=60, env=env)
    assert_clean_error(proc, "no key named 'bob'")
    assert_clean_error(
        run_cli(["keys", "list"], home, timeout=60, env={"LMOPS_API_KEYS": "oops"}),
        "LMOPS_API_KEYS entry 1",
    )
