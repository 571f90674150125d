"""What one app's routes share, kept on ``app.state.serving``: the settings, the served
model's holder, the API keys, the usage meter, the metrics and the output filter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from lmops.errors import LmopsError
from lmops.serving.metrics import ServingMetrics
from lmops.serving.output_filter import BatchedFilter, OutputFilter
from lmops.serving.settings import ServeSettings

if TYPE_CHECKING:
    from lmops.serving.admission import Admission
    from lmops.serving.key_watch import KeyWatcher
    from lmops.serving.keys import ApiKeys
    from lmops.serving.metering import UsageMeter
    from lmops.serving.model_source import ModelHolder, Verifier


@dataclass
class ServingState:
    """``holder``, ``keys`` and ``meter`` are the caller's, or ``None`` until ``open``
    makes the real ones from ``settings`` (``keys`` stay ``None`` when no key is
    required)."""

    settings: ServeSettings
    metrics: ServingMetrics
    output_filter: OutputFilter
    batched_filter: BatchedFilter
    holder: ModelHolder | None = None
    keys: ApiKeys | None = None
    meter: UsageMeter | None = None
    verifier: Verifier | None = None  # checks what the holder loads
    admission: Admission | None = None  # made from settings by build_app
    key_watcher: KeyWatcher | None = None  # while keys come from a file

    def key_limits(self, name: str):
        """``name``'s own admission limits from the key file, or None."""
        return self.keys.limits.get(name) if self.keys is not None else None

    def _swap_keys(self, keys: ApiKeys) -> None:
        self.keys = keys  # one assignment: a request sees the old set or the new one

    async def open(self) -> None:
        """Make what the caller did not pass; the app's lifespan runs it at start-up."""
        settings = self.settings
        if self.keys is None and settings.require_api_key:
            from pathlib import Path

            from lmops.serving.keys import ApiKeys

            path = Path(settings.api_keys_file) if settings.api_keys_file else None
            self.keys = ApiKeys.load(path)
            if not len(self.keys):
                raise LmopsError(
                    "no API keys are configured: create one with `lmops keys add NAME` or set "
                    "LMOPS_API_KEYS; `--no-auth` serves without keys on a private machine"
                )
        if self.keys is not None and self.keys.source is not None:
            from lmops.serving.key_watch import KeyWatcher

            self.key_watcher = KeyWatcher(
                self.keys, settings.watch_interval_s, self._swap_keys, self.metrics
            )
        if self.meter is None:
            from lmops.serving.metering import UsageMeter

            self.meter = UsageMeter(settings.usage_db)
        if self.holder is None:
            from lmops.serving.model_source import ModelHolder

            self.holder = await run_in_threadpool(
                ModelHolder, settings, self.metrics, self.verifier
            )

    def close(self) -> None:
        if self.key_watcher is not None:
            self.key_watcher.close()
        self.holder.close()
