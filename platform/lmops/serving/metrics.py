"""Prometheus metrics of one server (``/metrics``), in a registry of its own.

A registry per app (not the process-global one) lets tests and Ray Serve replicas
build several apps in one process without duplicate-metric errors.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class ServingMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._requests = Counter(
            "lmops_requests", "HTTP requests by path and status.", ["path", "status"], registry=r
        )
        self._latency = Histogram(
            "lmops_request_seconds",
            "Request latency (whole response).",
            ["path"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self._tokens = Counter("lmops_tokens", "Tokens served.", ["kind"], registry=r)
        self._filtered = Counter(
            "lmops_filtered_responses",
            "Completions the output filter changed or withheld.",
            ["action", "blocked"],
            registry=r,
        )
        self._batch = Histogram(
            "lmops_batch_rows",
            "Requests decoded together per batch.",
            registry=r,
            buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64),
        )
        self._swaps = Counter("lmops_model_swaps", "Model versions swapped in.", registry=r)
        self._load_failures = Counter(
            "lmops_model_load_failures", "Alias checks or loads that failed.", registry=r
        )
        self._refused = Counter(
            "lmops_refused_swaps",
            "Alias moves not followed: the new holder did not verify.",
            ["version"],
            registry=r,
        )
        self._refused_requests = Counter(
            "lmops_refused_requests",
            "Requests refused by admission control, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in ("request_budget", "queue_full", "key_concurrency", "key_tokens_per_minute"):
            self._refused_requests.labels(reason)
        self._key_reloads = Counter(
            "lmops_key_reloads",
            "Key file changes seen: loaded, or failed (the previous keys stay).",
            ["result"],
            registry=r,
        )
        self._version = Gauge(
            "lmops_served_version",
            "The registry version served (1 on the current one).",
            ["model", "version"],
            registry=r,
        )

    def request(self, path: str, status: int, seconds: float) -> None:
        known = path if path.startswith(("/v1/", "/healthz", "/metrics")) else "other"
        self._requests.labels(known, str(status)).inc()
        self._latency.labels(known).observe(seconds)

    def tokens(self, prompt: int, completion: int) -> None:
        self._tokens.labels("prompt").inc(prompt)
        self._tokens.labels("completion").inc(completion)

    def refused_request(self, reason: str) -> None:
        self._refused_requests.labels(reason).inc()

    def key_reload(self, result: str) -> None:
        self._key_reloads.labels(result).inc()

    def batch(self, rows: int) -> None:
        self._batch.observe(rows)

    def filtered(self, action: str, blocked: bool) -> None:
        self._filtered.labels(action, str(blocked).lower()).inc()

    def serving(self, served) -> None:
        self._version.clear()
        self._version.labels(served.name, served.version or "local").set(1)

    def swapped(self, old, new) -> None:
        self._swaps.inc()
        self.serving(new)

    def refused_swap(self, version: str) -> None:
        self._refused.labels(version).inc()

    def load_failed(self, err) -> None:
        self._load_failures.inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
