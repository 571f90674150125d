"""User-facing errors: one clear line that says what went wrong and what to do next.

The CLI prints `LmopsError` as a single line and exits non-zero, never a traceback.
"""


class LmopsError(Exception):
    """An error the user can fix; the message says how."""

    exit_code = 2


class ConfigError(LmopsError):
    """A run config that cannot be read, or a field that does not exist or has a bad value."""


class SourceError(LmopsError):
    """An input source that is missing, unreadable or of an unknown format."""


class DataStandardError(LmopsError):
    """A dataset that fails the data standard's dataset-level expectations."""

    exit_code = 3
