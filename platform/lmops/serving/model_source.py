"""The served model: load it, and follow its registry alias when it moves.

``models:/NAME@ALIAS`` is resolved to a version and that exact version is loaded, so
what is served is always a known version. A watcher thread checks the alias every
``watch_interval_s``; when it points elsewhere (a promotion or a rollback), the new
version loads in the background while the old one keeps serving, then one reference
assignment swaps them. Requests already on the old engine finish there; the old engine
closes once they have. A version that fails to load is logged and counted, and the
old one keeps serving.

Nothing is served that does not verify: the verifier the caller passes
(``model_registry.verify.load_verified``, wired by ``lmops serve`` and
``pipelines.serve_app``) checks the holder's latest signed promotion record, its signed
evidence and tags, and the downloaded files against their signature (hashed while the
engine loads them; an engine whose files fail is closed, never served). A move that
does not verify is refused: the old version keeps serving, one line is logged,
``/healthz`` shows it under ``refused`` and ``lmops_refused_swaps`` counts it.
``allow_unsigned`` (development) skips the checks and serves folders.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


# (uri, folder, load) -> (name, version, load(files, name, version)): loads only files
# that verify, or raises an LmopsError with exit code 4. The registry layer provides it
# (model_registry.verify.load_verified); serving takes it as an argument so that it
# never imports the registry.
Verifier = Callable[[str, Path, Callable], tuple]


def load(uri: str, settings: ServeSettings, on_batch=None, verifier: Verifier | None = None):
    """Load ``uri`` into the configured engine; a bad model is a one-line LmopsError.

    A registry model is loaded from files that ``verifier`` checked; without one, or
    for a folder, only ``settings.allow_unsigned`` serves it.
    """
    ref = _alias_ref(uri)
    alias = ref[1] if ref else ""
    if settings.allow_unsigned:
        name, version, pinned = resolve(uri)
        engine = _engine(pinned, settings, name, version, on_batch)
        return Served(engine, name, version, pinned, alias)
    if not uri.startswith("models:/"):
        raise LmopsError(
            f"{uri} is a folder, which carries no signature: serve a registry model "
            "(models:/NAME@ALIAS or models:/NAME/VERSION), or pass --allow-unsigned for "
            "development"
        )
    if verifier is None:
        raise LmopsError(
            "no signature verifier is configured: start the server with `lmops serve` or "
            "pipelines.serve_app:app (Ray Serve), or pass --allow-unsigned for development"
        )
    resolve(uri)  # an unknown model or alias: the registry's own one-line error
    tmp = Path(tempfile.mkdtemp(prefix="lmops-serve-"))
    try:
        name, version, engine = verifier(
            uri, tmp, lambda files, n, v: _engine(str(files), settings, n, v, on_batch)
        )
    finally:
        if settings.engine != "vllm":  # vLLM keeps reading its folder; transformers does not
            shutil.rmtree(tmp, ignore_errors=True)
    return Served(engine, name, version, f"models:/{name}/{version}", alias)


def _engine(source: str, settings: ServeSettings, name: str, version: str, on_batch):
    if settings.engine == "vllm":
        from lmops.serving.vllm_engine import VllmEngine

        return VllmEngine.from_uri(source, settings)
    return _transformers_engine(source, settings, f"{name}-v{version or 'local'}", on_batch)


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
    """The one served model, swapped atomically when its alias moves to a verified holder."""

    def __init__(
        self,
        settings: ServeSettings,
        metrics: ServingMetrics | None = None,
        verifier: Verifier | None = None,
    ):
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self.verifier = verifier
        if settings.allow_unsigned:
            log.warning(
                "UNSIGNED MODE (--allow-unsigned): serving %s without checking signatures, "
                "evidence or promotion records; for development only",
                settings.model,
            )
        self.current: Served = load(settings.model, settings, self.metrics.batch, verifier)
        self.metrics.serving(self.current)
        self.refused: dict[str, str] | None = None  # the latest move not followed
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
        """Swap in the alias's new holder if it verifies; True when it swapped."""
        from lmops.evaluation.loading import resolve_version

        version = resolve_version(self.settings.model)["version"]
        if version == self.current.version:
            self.refused = None
            return False
        log.info(
            "%s moved: v%s -> v%s; checking", self.settings.model, self.current.version, version
        )
        try:
            new = load(self.settings.model, self.settings, self.metrics.batch, self.verifier)
        except LmopsError as e:
            if e.exit_code != 4:  # not a verification failure: the caller logs and counts it
                raise
            first = self.refused is None or self.refused["version"] != version
            self.refused = {"version": version, "why": str(e)}
            self.metrics.refused_swap(version)
            if first:
                log.warning(
                    "refused to swap to v%s, still serving v%s: %s",
                    version,
                    self.current.version,
                    e,
                )
            return False
        if new.version == self.current.version:  # moved back while we checked
            new.engine.close()
            return False
        new.alias = self.current.alias
        old, self.current = self.current, new
        self.refused = None
        log.info("now serving %s v%s (verified)", new.name, new.version)
        self.metrics.swapped(old, new)
        threading.Thread(target=old.engine.close, daemon=True).start()
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.settings.watch_interval_s + 5)
        self.current.engine.close()
