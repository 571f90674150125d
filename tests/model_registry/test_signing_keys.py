"""Signing keys and the trust file: created safely, refused clearly when wrong."""

import stat

import pytest

from lmops.errors import LmopsError
from model_registry import attestation, keys


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / "home"))
    for var in (keys.SIGNING_KEY_ENV, keys.PROMOTION_KEY_ENV, keys.TRUST_FILE_ENV):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def test_the_home_key_is_made_0600_on_first_use_and_trusted_for_both_roles(home):
    s = keys.signer(keys.EVIDENCE)
    path = keys.default_key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.signer(keys.PROMOTION).public_key.keyid == s.public_key.keyid  # one key
    assert [t.keyid for t in keys.trusted(keys.EVIDENCE)] == [s.public_key.keyid]
    assert [t.keyid for t in keys.trusted(keys.PROMOTION)] == [s.public_key.keyid]


def test_a_statement_verifies_only_for_the_role_its_key_is_trusted_for(home, tmp_path):
    keys.signer(keys.EVIDENCE)
    text = attestation.sign_statement("models:/m/1", "ab" * 32, attestation.EVIDENCE_TYPE,
                                      {"x": "1"}, keys.EVIDENCE)  # fmt: skip
    assert attestation.verify_statement(text, attestation.EVIDENCE_TYPE, keys.EVIDENCE, "m")
    # The same key listed for promotion only: evidence it signed no longer verifies.
    trust = keys.trust_file()
    trust.write_text(trust.read_text().replace('"evidence", ', ""))
    with pytest.raises(attestation.Unverified, match="trusts no key for evidence"):
        attestation.verify_statement(text, attestation.EVIDENCE_TYPE, keys.EVIDENCE, "m")
    tampered = text.replace(text[text.index('"payload": "') + 12], "A", 1)
    with pytest.raises(attestation.Unverified):
        attestation.verify_statement(tampered, attestation.PROMOTION_TYPE, keys.PROMOTION, "m")


def test_a_key_others_can_read_is_refused(home):
    keys.signer(keys.EVIDENCE)
    keys.default_key_path().chmod(0o644)
    with pytest.raises(LmopsError, match="readable by others; run `chmod 600"):
        keys.signer(keys.EVIDENCE)


def test_a_named_key_that_is_missing_is_a_clear_error(home, tmp_path, monkeypatch):
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, str(tmp_path / "nope.pem"))
    with pytest.raises(LmopsError, match="LMOPS_SIGNING_KEY names .*nope.pem, which does not"):
        keys.signer(keys.EVIDENCE)


def test_a_configured_trust_file_is_never_written(home, tmp_path, monkeypatch):
    trust = tmp_path / "trusted.toml"
    trust.write_text("")
    monkeypatch.setenv(keys.TRUST_FILE_ENV, str(trust))
    keys.signer(keys.EVIDENCE)  # a new home key ...
    assert trust.read_text() == "" and keys.trusted(keys.EVIDENCE) == []  # ... not trusted


def test_a_broken_trust_file_names_itself(home, tmp_path, monkeypatch):
    trust = tmp_path / "trusted.toml"
    trust.write_text('[[keys]]\nroles = ["evidence"]\npublic_key = "not a key"\n')
    monkeypatch.setenv(keys.TRUST_FILE_ENV, str(trust))
    with pytest.raises(LmopsError, match=r"trusted.toml: entry 1 is not a public key"):
        keys.load_trusted()
    trust.write_text("[[keys]\n")
    with pytest.raises(LmopsError, match="is not valid TOML"):
        keys.load_trusted()
