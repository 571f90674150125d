"""The same API as a Ray Serve application: replicas, and GPUs per replica.

    serve run pipelines.serve_app:app model=models:/lmops-lm@production

or a KubeRay ``RayService`` with ``import_path: pipelines.serve_app:app`` and the
settings under ``args`` (``infra/k8s/rayservice.yaml``). ``app`` is a Serve application
builder: ``args`` are :class:`ServeSettings` fields plus ``num_replicas`` and
``num_gpus``. Every replica builds the app that ``lmops serve`` runs, so keys,
metering, the output filter and alias following behave the same; Serve's proxy spreads
requests over the replicas.
"""

from __future__ import annotations

from ray import serve

from lmops.serving.settings import ServeSettings

DEPLOYMENT = "lmops"


def app(args: dict[str, str], verifier=None):
    """Build the Serve application from ``args`` (strings, as ``serve run k=v`` passes).

    ``verifier`` checks signatures before a replica loads or swaps a version;
    ``pipelines.serve_app:app`` passes the registry's. Without one only
    ``allow_unsigned`` serves.
    """
    opts = dict(args or {})
    replicas = int(opts.pop("num_replicas", 1))
    gpus = float(opts.pop("num_gpus", 0))
    settings = ServeSettings.model_validate(opts)

    def build_asgi():
        from lmops.serving.app import build_app

        return build_app(settings, verifier=verifier)

    deployment = serve.deployment(serve.ingress(build_asgi)(), name=DEPLOYMENT)
    return deployment.options(num_replicas=replicas, ray_actor_options={"num_gpus": gpus}).bind()
