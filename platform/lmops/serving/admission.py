"""Admission control: what one request may ask, and what one key may hold.

Checked before any decoding, in this order:

1. **Request budget** (400): prompts x n x max_tokens, beams counted (a beam search of
   width w decodes w rows), over ``request_token_budget``.
2. **Server queue** (503 + ``Retry-After``): more than ``max_queued_requests`` requests
   admitted and not finished, across keys. A full server answers at once; nobody waits
   unboundedly.
3. **Key concurrency** (429 + ``Retry-After``): the key already has
   ``key_max_concurrent`` requests in flight.
4. **Key tokens per minute** (429 + ``Retry-After``): a token bucket per key, refilled
   at ``key_tokens_per_minute / 60`` a second up to one minute's worth. A request
   reserves its prompt tokens plus its whole budget; what it did not generate is given
   back when it ends.

Limits are per server process (per Ray Serve replica). A key's own ``max_concurrent``
and ``tokens_per_minute`` in the key file (``lmops keys add --max-concurrent``) replace
the server's for that key, from the next request after the file is reloaded.
Hand-written because these are a few counters under one lock on the event loop's
thread; a rate-limit library would bring a backend (Redis) the laptop does not run.
Fairness between keys inside the engine is the engine's round-robin queue.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lmops.serving.api_errors import ApiError


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Ticket:
    key: str
    reserved: int
    tpm: int  # the key's tokens per minute when it entered: the bucket's size
    released: bool = False


@dataclass
class Admission:
    request_token_budget: int
    max_queued_requests: int
    key_max_concurrent: int
    key_tokens_per_minute: int
    metrics: object = None
    limits_for: Callable[[str], object] | None = None  # key -> its KeyLimits, or None
    clock: Callable[[], float] = time.monotonic
    _active: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _inflight: int = 0

    @classmethod
    def from_settings(cls, settings, metrics=None, limits_for=None) -> Admission:
        return cls(
            settings.request_token_budget,
            settings.max_queued_requests,
            settings.key_max_concurrent,
            settings.key_tokens_per_minute,
            metrics,
            limits_for,
        )

    def budget(self, jobs) -> int:
        """The tokens ``jobs`` may generate, or a 400 when over the request budget."""
        asked = sum(p.max_tokens * max(p.beam_width, 1) for _, p in jobs)
        if asked > self.request_token_budget:
            self._refused("request_budget")
            raise ApiError(
                400,
                f"this request may generate {asked} tokens (prompts x n x max_tokens, "
                f"beams counted); this server's budget per request is "
                f"{self.request_token_budget}",
                param="max_tokens",
                code="request_token_budget_exceeded",
            )
        return asked

    def enter(self, key: str, tokens: int) -> Ticket:
        """Admit a request of ``tokens`` (prompt plus budget) for ``key``, or raise."""
        if self._inflight >= self.max_queued_requests:
            self._refused("queue_full")
            raise _retry(503, "the server is at capacity; retry shortly", "server_busy", 1)
        own = self.limits_for(key) if self.limits_for is not None else None
        concurrent = getattr(own, "max_concurrent", None) or self.key_max_concurrent
        tpm = getattr(own, "tokens_per_minute", None) or self.key_tokens_per_minute
        if self._active.get(key, 0) >= concurrent:
            self._refused("key_concurrency")
            raise _retry(
                429,
                f"key '{key}' already has {concurrent} requests in flight, its limit",
                "rate_limit_concurrency",
                1,
            )
        bucket = self._refill(key, tpm)
        need = min(tokens, tpm)  # a request bigger than a minute's worth waits for a full one
        if bucket.tokens < need:
            self._refused("key_tokens_per_minute")
            wait = math.ceil((need - bucket.tokens) / (tpm / 60))
            raise _retry(
                429,
                f"key '{key}' is over its {tpm} tokens per minute",
                "rate_limit_tokens",
                max(wait, 1),
            )
        bucket.tokens -= need
        self._active[key] = self._active.get(key, 0) + 1
        self._inflight += 1
        return Ticket(key, need, tpm)

    def leave(self, ticket: Ticket, used: int) -> None:
        """End ``ticket``: free its slots and give back what it reserved and did not use."""
        if ticket.released:
            return
        ticket.released = True
        self._inflight -= 1
        left = self._active.get(ticket.key, 1) - 1
        if left:
            self._active[ticket.key] = left
        else:
            self._active.pop(ticket.key, None)
        bucket = self._buckets.get(ticket.key)
        if bucket is not None:
            bucket.tokens = min(ticket.tpm, bucket.tokens + max(ticket.reserved - used, 0))

    @property
    def inflight(self) -> int:
        return self._inflight

    def _refill(self, key: str, tpm: int) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(tpm), now)
        b.tokens = min(float(tpm), b.tokens + (now - b.at) * tpm / 60)
        b.at = now
        return b

    def _refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.refused_request(reason)


def _retry(status: int, message: str, code: str, seconds: int) -> ApiError:
    err = ApiError(status, f"{message} (retry after {seconds} s)", code=code)
    err.headers = {"Retry-After": str(seconds)}
    return err
