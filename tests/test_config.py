import pytest
from pydantic import ValidationError

from lmops.config import RunConfig, build_config
from lmops.errors import ConfigError
from pipelines.run_config import CONFIG_DIR, load_run_config, named_configs


def test_named_configs_exist_and_load():
    assert {"tiny", "cpu", "h200"} <= set(named_configs())
    for name in named_configs():
        cfg = load_run_config(name)
        assert cfg.name == name


def test_tiny_uses_debug_preset_with_preset_fields():
    cfg = load_run_config("tiny")
    assert cfg.model.preset == "debug"
    assert cfg.model.hidden_size == 64 and cfg.model.seq_len == 64


def test_override_changes_one_field_and_keeps_the_rest():
    base = load_run_config("tiny")
    cfg = load_run_config("tiny", ["train.max_steps=7", "registry.model_name=abc"])
    assert cfg.train.max_steps == 7 and cfg.registry.model_name == "abc"
    assert cfg.train.lr == base.train.lr
    assert cfg.digest() != base.digest()


def test_unknown_field_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown field 'train.max_stepz'"):
        load_run_config("tiny", ["train.max_stepz=3"])


def test_bad_value_names_the_field():
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_run_config("tiny", ["train.max_steps=-1"])


def test_unknown_preset_and_config():
    with pytest.raises(ConfigError, match="unknown model preset"):
        load_run_config("tiny", ["model.preset=huge"])
    with pytest.raises(ConfigError, match="unknown config 'nope'"):
        load_run_config("nope")


def test_config_round_trips_through_json():
    cfg = load_run_config("cpu")
    again = RunConfig.model_validate_json(cfg.model_dump_json())
    assert again.model_dump() == cfg.model_dump() and again.digest() == cfg.digest()
    # The folder the config's profile file is read from is where the settings came
    # from, not a setting: no checkout's path enters the JSON, the digest or a dataset id.
    assert cfg.data.profile_dir == CONFIG_DIR.resolve()
    assert cfg.data.profile == "profiles/sample-corpus.toml"
    assert str(CONFIG_DIR.resolve()) not in cfg.model_dump_json()


def test_configs_are_frozen():
    cfg = build_config({})
    with pytest.raises(ValidationError):
        cfg.train.max_steps = 3  # type: ignore[misc]
