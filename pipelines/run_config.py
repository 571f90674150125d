"""Resolve a run config by name (``pipelines/configs/<name>.toml``) or path."""

from __future__ import annotations

from pathlib import Path

from lmops.config import RunConfig, build_config, read_toml
from lmops.errors import ConfigError

CONFIG_DIR = Path(__file__).with_name("configs")


def named_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_run_config(name_or_path: str = "cpu", overrides: list[str] | None = None) -> RunConfig:
    """Load ``name_or_path`` and apply ``section.field=value`` overrides.

    A relative ``data.profile`` file in the config is read from the config's own folder
    (``cpu`` uses ``pipelines/configs/profiles/sample-corpus.toml``), whatever the
    working directory; one given as an override is read from the working directory.
    """
    path = Path(name_or_path)
    if path.suffix != ".toml":
        if name_or_path not in named_configs():
            raise ConfigError(
                f"unknown config '{name_or_path}'; use one of {named_configs()} or a .toml path"
            )
        path = CONFIG_DIR / f"{name_or_path}.toml"
    return build_config(
        read_toml(path), overrides or [], origin=str(path), base_dir=path.resolve().parent
    )
