"""Resolve a data standard TOML into a :class:`Standard` and hash it.

Resolution order: the standard's base tables, then the chosen profile (a named
``[profiles.NAME]`` table, or a user TOML file that ``extends`` one), then the run
config's overrides (``data.quality_overrides``, ``data.allowed_langs``,
``data.min_chars``/``max_chars``, ``data.quality_rules``, ``data.near_dedup``). The
resolved tree and the GX suite it names are hashed into :attr:`Standard.digest`,
which the dataset version id includes: changing any figure or word list gives a new id.

An override never replaces what the profile chose in silence: each setting it changes
is one line of :attr:`Standard.overrides` (``zh.min_chars 8 -> 100, from config cpu``),
which the manifest records and ``lmops ingest`` prints.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lmops.config import read_toml
from lmops.data.standard.quality_thresholds import QualityThresholds, lang_family
from lmops.errors import ConfigError

STANDARD_DIR = Path(__file__).parent
FAMILIES = ("en", "zh", "other", "unsegmented")
_PROFILE_KEYS = ("description", "extends")


@dataclass(frozen=True)
class Standard:
    """Everything the per-document stage needs to decide; picklable for worker processes."""

    name: str
    version: str
    profile: str
    digest: str
    expectation_suite: str
    allowed_langs: tuple[str, ...]
    min_lang_score: float
    redact_pii: bool
    max_pii_hits: int
    toxicity_threshold: float
    exact_dedup: bool
    near_dedup: bool
    min_jaccard: float
    against_previous: bool
    quality_enabled: bool
    min_chars: int
    max_chars: int
    code_blocks: str
    max_reject_rate: float
    max_duplicate_rate: float
    profiles: tuple[str, ...] = ()
    # Each setting the run config's overrides changed from the standard and profile.
    overrides: tuple[str, ...] = ()
    thresholds: dict[str, QualityThresholds] = field(default_factory=dict)
    resolved: dict = field(default_factory=dict, repr=False, compare=False)

    def summary(self) -> dict:
        """What a manifest and an MLflow run record about the standard."""
        return {
            "name": self.name,
            "version": self.version,
            "profile": self.profile,
            "digest": self.digest,
            "profiles": list(self.profiles),
            "overrides": list(self.overrides),
        }

    def thresholds_for(self, lang: str) -> QualityThresholds:
        return self.thresholds[lang_family(lang)]


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, table by table (values replace)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _standard_path(name: str) -> Path:
    path = Path(name) if name.endswith(".toml") else STANDARD_DIR / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in STANDARD_DIR.glob("*.toml"))
        raise ConfigError(f"data standard '{name}' not found; known: {known}")
    return path


def _profile_tables(
    raw: dict, profile: str, where: Path, profile_dir: Path | None = None
) -> tuple[str, dict]:
    """(profile name, its tables) for a named profile or a user profile file.

    A relative file path is read from ``profile_dir`` (the folder of the run config that
    named it), or from the working directory when that is None.
    """
    profiles = raw.get("profiles", {})
    if profile.endswith(".toml"):
        path = Path(profile).expanduser()
        if profile_dir is not None and not path.is_absolute():
            path = profile_dir / path
        user = read_toml(path, "profile")
        parent = user.get("extends", raw.get("default_profile", "web"))
        if parent not in profiles:
            raise ConfigError(
                f"profile {path} extends '{parent}', which {where.name} does not define; "
                f"profiles: {sorted(profiles)}"
            )
        name = f"{path.stem} (extends {parent})"
        return name, _merge(profiles[parent], user)
    if profile not in profiles:
        raise ConfigError(
            f"unknown data profile '{profile}'; {where.name} defines {sorted(profiles)}, "
            "or pass a TOML file that extends one"
        )
    return profile, profiles[profile]


def _family_tables(q: dict, where: str) -> dict[str, dict]:
    """Each language family's full table, with ``extends`` resolved."""
    out = {}
    for fam in FAMILIES:
        table = dict(q.get(fam, {}))
        parent = table.pop("extends", None)
        if parent is not None:
            if parent not in q or "extends" in q[parent]:
                raise ConfigError(f"{where} [quality.{fam}] extends unknown table '{parent}'")
            table = _merge(q[parent], table)
        out[fam] = table
    return out


_OFF = QualityThresholds()  # every rule off: tells switches from figures


def _thresholds(table: dict, short_line_chars: int, where: str) -> QualityThresholds:
    names = {f.name for f in dataclasses.fields(QualityThresholds)}
    clean: dict = {"short_line_chars": short_line_chars}
    for k, v in table.items():
        if k not in names:
            raise ConfigError(f"{where}: unknown quality threshold '{k}'; known: {sorted(names)}")
        default = getattr(_OFF, k)
        if k == "stopwords":
            clean[k] = frozenset(v)
        elif isinstance(v, list):  # n-gram limits are pairs, phrase lists are strings
            clean[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        elif v is False and not isinstance(default, bool):
            clean[k] = None  # `false` switches a numeric rule off
        else:
            clean[k] = v
    try:
        return QualityThresholds(**clean)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _run_overrides(data_cfg) -> dict:
    """The run config's settings that change decisions, as standard tables."""
    over: dict = {"quality": {}}
    for lang, table in (data_cfg.quality_overrides or {}).items():
        over["quality"][lang_family(lang)] = dict(table)
    if data_cfg.allowed_langs:
        over["language"] = {"allowed": list(data_cfg.allowed_langs)}
    length = {k: getattr(data_cfg, k) for k in ("min_chars", "max_chars")}
    over["length"] = {k: v for k, v in length.items() if v is not None}
    if not data_cfg.quality_rules:
        over["quality"]["enabled"] = False
    if not data_cfg.near_dedup:
        over["dedup"] = {"near": False}
    return over


def _shown(value) -> str:
    return "unset" if value is None else json.dumps(value, ensure_ascii=False)


def _override_lines(before: dict, over: dict, after: dict, origin: str | None) -> tuple[str, ...]:
    """One line per setting that ``over`` (the run config's tables) changed in ``before``
    (the standard under its profile), e.g. ``zh.min_chars 8 -> 100, from config cpu``.

    Quality thresholds are compared per language family with ``extends`` resolved, so an
    English override that another family inherits is listed for that family too.
    """
    lines = []
    q_before, q_over = before.get("quality", {}), over.get("quality", {})
    old_fams = _family_tables(q_before, "the standard")
    for fam, new in _family_tables(after.get("quality", {}), "the run config").items():
        old = old_fams[fam]
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            direct = key in q_over.get(fam, {})
            via = "" if direct else f" (extends {q_before.get(fam, {}).get('extends')})"
            lines.append(f"{fam}.{key} {_shown(old.get(key))} -> {_shown(new.get(key))}{via}")
    for table, settings in over.items():
        for key, now in settings.items():
            if table == "quality" and key != "enabled":
                continue  # the families, above
            was = before.get(table, {}).get(key)
            if was != now:
                lines.append(f"{table}.{key} {_shown(was)} -> {_shown(now)}")
    src = f"from config {origin}" if origin else "from the run config"
    return tuple(f"{line}, {src}" for line in lines)


def suite_text(name: str) -> str:
    path = STANDARD_DIR / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"expectation suite '{name}' not found in {STANDARD_DIR}")
    return path.read_text(encoding="utf-8")


def resolve(
    standard: str = "v1",
    profile: str | None = None,
    data_cfg=None,
    origin: str | None = None,
    profile_dir: Path | None = None,
) -> Standard:
    """The standard ``standard`` under ``profile`` with ``data_cfg``'s overrides applied.

    ``origin`` names the run config in each recorded override; ``profile_dir`` is the
    folder a relative profile file path is read from (default: the working directory).
    """
    path = _standard_path(standard)
    raw = read_toml(path, "data standard")
    profile = profile or raw.get("default_profile", "web")
    name, tables = _profile_tables(raw, profile, path, profile_dir)
    tree = {k: v for k, v in raw.items() if k != "profiles"}
    tree = _merge(tree, {k: v for k, v in tables.items() if k not in _PROFILE_KEYS})
    chosen, over = tree, {}
    if data_cfg is not None:
        over = _run_overrides(data_cfg)
        tree = _merge(tree, over)
    tree["profile"] = name
    suite = tree["expectation_suite"]
    blob = json.dumps([tree, json.loads(suite_text(suite))], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    q = tree.get("quality", {})
    where = f"{path.name} (profile {name})"
    short = int(q.get("short_line_chars", 0))
    thresholds = {
        fam: _thresholds(t, short, f"{where} [quality.{fam}]")
        for fam, t in _family_tables(q, where).items()
    }
    try:

        def num(dotted: str, kind: type = float):
            return _setting(tree, dotted, (int, float), where, kind)

        def flag(dotted: str) -> bool:
            return _setting(tree, dotted, (bool,), where, bool)

        code_blocks = tree["formats"]["code_blocks"]
        if code_blocks not in ("keep", "drop"):
            raise ConfigError(f"{where}: formats.code_blocks must be 'keep' or 'drop'")
        return Standard(
            name=path.stem,
            version=tree["version"],
            profile=name,
            digest=digest,
            expectation_suite=suite,
            allowed_langs=tuple(tree["language"]["allowed"]),
            min_lang_score=num("language.min_score"),
            redact_pii=flag("pii.redact"),
            max_pii_hits=num("pii.max_hits", int),
            toxicity_threshold=num("toxicity.threshold"),
            exact_dedup=flag("dedup.exact"),
            near_dedup=flag("dedup.near"),
            min_jaccard=num("dedup.min_jaccard"),
            against_previous=flag("dedup.against_previous_versions"),
            quality_enabled=bool(q.get("enabled", True)),
            min_chars=num("length.min_chars", int),
            max_chars=num("length.max_chars", int),
            code_blocks=code_blocks,
            max_reject_rate=num("dataset.max_reject_rate"),
            max_duplicate_rate=num("dataset.max_duplicate_rate"),
            profiles=tuple(sorted(raw.get("profiles", {}))),
            overrides=_override_lines(chosen, over, tree, origin) if over else (),
            thresholds=thresholds,
            resolved=tree,
        )
    except KeyError as e:
        raise ConfigError(f"{where}: missing setting {e}") from None


def _setting(tree: dict, dotted: str, types: tuple, where: str, kind: type):
    """``tree[table][key]`` as ``kind``, or a clear error if its TOML type is wrong.

    Python reads a TOML ``false`` as the number 0 and any string as true, so without
    this check ``[toxicity] threshold = false`` would quarantine every document.
    ``false`` switches rules off only in ``[quality.*]`` tables.
    """
    table, key = dotted.split(".")
    value = tree[table][key]
    if isinstance(value, bool) is not (types == (bool,)) or not isinstance(value, types):
        want = "true or false" if types == (bool,) else "a number"
        raise ConfigError(f"{where}: {dotted} must be {want}, not {value!r}")
    return kind(value)


def load_standard(data_cfg, origin: str | None = None) -> Standard:
    """The standard and profile a run's ``DataConfig`` names, with its overrides applied.

    The overrides it records name ``origin``, by default the run config the settings
    came from (:attr:`DataConfig.origin`).
    """
    return resolve(
        data_cfg.standard,
        data_cfg.profile,
        data_cfg,
        origin or getattr(data_cfg, "origin", None),
        getattr(data_cfg, "profile_dir", None),
    )


@lru_cache(maxsize=1)
def default_standard() -> Standard:
    """The shipped standard under its default profile, no overrides."""
    return resolve()


def thresholds_for(lang: str) -> QualityThresholds:
    """The default standard's (web profile) thresholds for ``lang``."""
    return default_standard().thresholds_for(lang)


def profile_hint(standard: dict) -> str:
    """One sentence for error messages: the profile used and the ones that exist.

    ``standard`` is a manifest's ``standard`` section (see ``Standard.summary``).
    """
    hint = (
        f"Profile used: '{standard['profile']}'; profiles of {standard['name']}: "
        f"{', '.join(standard['profiles'])} "
        "(choose with --profile NAME, or data.profile in a run config; a TOML file that "
        "extends one is a user profile)."
    )
    if standard.get("overrides"):
        hint += f" The run config changed the profile's rules: {'; '.join(standard['overrides'])}."
    return hint
