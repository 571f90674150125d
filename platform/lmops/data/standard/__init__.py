"""The data standard, in one home.

- ``v1.toml``: every threshold, word list and setting, with named profiles;
  ``corpus_v1.json``: the Great Expectations suite it names.
- :mod:`.loader`: resolves standard + profile + run overrides and hashes the result.
- :mod:`.records`: the record schema checks and normalisation; :mod:`.schema`: the
  Arrow schemas of stored records.
- :mod:`.quality_thresholds`: the quality figures of one language family;
  :mod:`.quality_signals`: per-document quality signals; :mod:`.quality_rules`: the
  keep/drop decision; :mod:`.c4`: C4's line filter.
"""

from lmops.data.standard.loader import (
    Standard,
    default_standard,
    load_standard,
    profile_hint,
    resolve,
)

__all__ = ["Standard", "default_standard", "load_standard", "profile_hint", "resolve"]
