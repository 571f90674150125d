"""The served model: load it, and follow its registry alias when it moves.

``models:/NAME@ALIAS`` is resolved to a version and that exact version is loaded, so
what is served is always a known version. A watcher thread checks the alias every
``watch_interval_s``; when it points elsewhere (a promotion or a rollback), the new
version loads in the background while the old one keeps serving, then one reference
assignment swaps them. Requests already on the old engine finish there; the old engine
closes once they have. A version that fails to load is logged and counted, and the
old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from lmops.errors import LmopsError
from lmops.serving.metrics import ServingMetrics
from lmops.serving.settings import ServeSettings

log = logging.getLogger("lmops.serving")


@dataclass
class Served:
    engine: object
    name: str  # the id clients send as ``model``
    version: str  # registry version; "" for a folder
    uri: str  # what was loaded (pinned to the version)
    alias: str = ""
    loaded_at: float = field(default_factory=time.time)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.engine.tokenizer, "chat_template", None))


def _alias_ref(uri: str) -> tuple[str, str] | None:
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri[len("models:/") :].split("@", 1)
        return name, alias
    return None


def resolve(uri: str) -> tuple[str, str, str]:
    """(name, version, pinned uri) for what ``uri`` names right now."""
    from lmops.evaluation.loading import resolve_version

    if uri.startswith("models:/"):
        v = resolve_version(uri)
        return v["name"], v["version"], f"models:/{v['name']}/{v['version']}"
    from pathlib import Path

    return Path(uri).name or uri, "", uri


def load(uri: str, settings: ServeSettings, on_batch=None) -> Served:
    """Load ``uri`` into the configured engine; a bad model is a one-line LmopsError."""
    name, version, pinned = resolve(uri)
    ref = _alias_ref(uri)
    if settings.engine == "vllm":
        from lmops.serving.vllm_engine import VllmEngine

        engine = VllmEngine.from_uri(pinned, settings)
    else:
        engine = _transformers_engine(pinned, settings, f"{name}-v{version or 'local'}", on_batch)
    return Served(engine, name, version, pinned, alias=ref[1] if ref else "")


def _transformers_engine(uri: str, settings: ServeSettings, label: str, on_batch=None):
    import torch

    from lmops.evaluation.loading import load_for_eval
    from lmops.serving.engine import TransformersEngine

    loaded = load_for_eval(uri, settings.device)
    if loaded.kind != "causal":
        raise LmopsError(f"{uri} is a masked LM; only causal LMs generate text to serve")
    model = loaded.model
    if settings.quantize == "int8":
        if loaded.device != "cpu":
            raise LmopsError("quantize = int8 is dynamic quantisation for CPU; use bf16 on GPU")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif settings.quantize == "bf16":
        if loaded.device == "cpu":
            raise LmopsError("quantize = bf16 is for GPUs; on CPU use int8 or none")
        model = model.to(torch.bfloat16)
    return TransformersEngine(
        model,
        loaded.tokenizer,
        max_batch_size=settings.max_batch_size,
        batch_wait_ms=settings.batch_wait_ms,
        name=label,
        on_batch=on_batch,
    )


class ModelHolder:
    """The one served model, swapped atomically when its alias moves."""

    def __init__(self, settings: ServeSettings, metrics: ServingMetrics | None = None):
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self.current: Served = load(settings.model, settings, self.metrics.batch)
        self.metrics.serving(self.current)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if _alias_ref(settings.model):
            self._thread = threading.Thread(target=self._watch, name="alias-watch", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.watch_interval_s):
            try:
                self.check_alias()
            except Exception as e:  # the registry may be down: keep serving, retry
                log.warning("alias check failed: %s", e)
                self.metrics.load_failed(e)

    def check_alias(self) -> bool:
        """Load and swap in the alias's version if it moved; True when it swapped."""
        _, version, pinned = resolve(self.settings.model)
        if version == self.current.version:
            return False
        log.info(
            "%s moved: v%s -> v%s; loading", self.settings.model, self.current.version, version
        )
        new = load(pinned, self.settings, self.metrics.batch)
        new.alias = self.current.alias
        old, self.current = self.current, new
        log.info("now serving %s v%s", new.name, new.version)
        self.metrics.swapped(old, new)
        threading.Thread(target=old.engine.close, daemon=True).start()
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.settings.watch_interval_s + 5)
        self.current.engine.close()
