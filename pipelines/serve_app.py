"""The Ray Serve application of ``lmops serve``, with the registry's signature checks.

    serve run pipelines.serve_app:app model=models:/lmops-lm@production

``lmops.serving`` never imports the registry, so the verifier is wired here, as
``lmops serve`` wires it in ``pipelines/cli/serving.py``.
"""

from __future__ import annotations

from lmops.serving import ray_serve
from model_registry.verify import load_verified


def app(args: dict[str, str]):
    """The Serve application builder: ``args`` as for ``lmops.serving.ray_serve.app``."""
    return ray_serve.app(args, verifier=load_verified)
