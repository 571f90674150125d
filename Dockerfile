# syntax=docker/dockerfile:1
# The lmops image. By default it runs `lmops serve`; infra/compose and infra/k8s run the
# same image as the MLflow server, Prefect server and worker, and the Ray nodes. They name
# it lmops:<version of pyproject.toml>, and tests/infra/test_image.py keeps the two in step.
#
#   docker build -t lmops:0.1.0 .                      # CPU torch (the default)
#   docker build -t lmops:0.1.0-cuda \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .   # CUDA 12.8 torch
#   docker run --rm -p 8000:8000 -e LMOPS_API_KEYS=... -e MLFLOW_TRACKING_URI=... lmops:0.1.0
#
# Stage 1 builds a virtual environment; stage 2 copies it into a slim image that runs as
# an unprivileged user, with no compiler and no pip cache.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
# The wheel index picks the torch build: .../whl/cpu (a 183 MB wheel) or .../whl/cu128
# (CUDA 12.8, several GB of NVIDIA libraries). torch 2.13.0 is the version tested here.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG LMOPS_VERSION=0.1.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip
# torch first, from the chosen index, so that the project's `torch>=2.4` is already met
# and the install below never swaps it for the default (CUDA) wheel from PyPI.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

WORKDIR /app
# Dependencies before the source, so that editing code does not reinstall them: the
# project is installed (editable, from /app) against empty package stubs, then the real
# packages are copied over the stubs.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p platform/lmops pipelines model_registry \
    && touch platform/lmops/__init__.py pipelines/__init__.py model_registry/__init__.py \
    && pip install -c constraints.txt -e .
RUN v=$(python -c 'import importlib.metadata as m; print(m.version("lmops"))') \
    && [ "$v" = "$LMOPS_VERSION" ] \
    || { echo "error: LMOPS_VERSION=$LMOPS_VERSION, pyproject.toml says $v: tag the image $v" >&2; exit 1; }
# Editable on purpose: `lmops schedule` and the Prefect worker (LMOPS_REPO=/app) read
# prefect.yaml and the flow files next to the code that they import.
COPY platform platform
COPY pipelines pipelines
COPY model_registry model_registry
COPY prefect.yaml ./
# Bytecode now: at run time /app belongs to root and the service user cannot write it.
RUN python -m compileall -q platform pipelines model_registry


FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG LMOPS_VERSION=0.1.0
LABEL org.opencontainers.image.title="lmops" \
      org.opencontainers.image.version="${LMOPS_VERSION}" \
      org.opencontainers.image.description="lmops serve (OpenAI-compatible API) and the lmops platform services" \
      org.opencontainers.image.licenses="Apache-2.0"
# wget: KubeRay (>= 1.1) probes Ray pods with `wget` in an exec probe.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 lmops \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash lmops \
    && mkdir -p /data/lmops && chown -R 1000:1000 /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# Login shells (KubeRay starts Ray with `bash -lc`) reset PATH from /etc/profile.
RUN echo 'export PATH=/opt/venv/bin:$PATH' >/etc/profile.d/lmops-venv.sh
ENV PATH=/opt/venv/bin:$PATH \
    LMOPS_HOME=/data/lmops \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GX_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1
WORKDIR /app
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without runAsUser.
USER 1000:1000
EXPOSE 8000
# Python, not curl: the image carries no curl. Only `lmops serve` on its default port
# answers /healthz; compose gives the other services a check of their own, or none.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["lmops"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
