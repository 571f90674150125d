"""The serving output filter: the safety suite's detectors, applied to every completion.

The same code judges text here as in ingest and in the red-team suite
(``lmops.text``): the toxicity classifier, the harm lexicons and the PII patterns.

* ``block``: a completion with any hit is withheld (``finish_reason = "content_filter"``).
* ``redact``: PII is replaced by its kind (``<EMAIL>``...); a toxic or harmful
  completion is still withheld, because it has no span that could be cut out.
* ``off``: nothing is checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from lmops.data.langid import script_language
from lmops.text.harm_lexicon import harm_categories
from lmops.text.pii import redact
from lmops.text.toxicity import toxicity_scores

Action = Literal["block", "redact", "off"]

# Streaming holds back this many characters, so a PII string up to this long is whole
# (and redacted) before any of it leaves the server.
STREAM_HOLDBACK = 64


@dataclass(frozen=True)
class Verdict:
    text: str  # what may be sent (redacted or empty)
    blocked: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filtered(self) -> bool:
        return self.blocked or bool(self.reasons)


@dataclass(frozen=True)
class OutputFilter:
    action: Action = "redact"
    toxicity_threshold: float = 0.5

    def check(self, text: str) -> Verdict:
        return self.check_many([text])[0]

    def check_many(self, texts: list[str]) -> list[Verdict]:
        """Verdicts for several completions with one classifier call (its fixed cost
        per call is most of the time a short text takes)."""
        if self.action == "off":
            return [Verdict(t) for t in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        tox = toxicity_scores([texts[i] for i in todo], [script_language(texts[i]) for i in todo])
        scores = dict(zip(todo, tox, strict=True))
        return [self._verdict(t, scores.get(i, 0.0)) for i, t in enumerate(texts)]

    def _verdict(self, text: str, tox: float) -> Verdict:
        reasons: list[str] = []
        if tox > self.toxicity_threshold:
            reasons.append(f"toxicity {tox:.2f}")
        reasons += [f"harm:{c}" for c in harm_categories(text)]
        if reasons:
            return Verdict("", blocked=True, reasons=tuple(reasons))
        redacted, counts = redact(text)  # one PII scan: the masked text and the kinds found
        why = tuple(f"pii:{k}" for k in sorted(k for k, n in counts.items() if n))
        if not why:
            return Verdict(text)
        if self.action == "block":
            return Verdict("", blocked=True, reasons=why)
        return Verdict(redacted, reasons=why)


class BatchedFilter:
    """Completions that finish in the same event-loop turn share one ``check_many``.

    Rows of one decoding batch often finish on the same step, so under load this turns
    sixteen classifier calls into one.
    """

    def __init__(self, flt: OutputFilter):
        self.flt = flt
        self._pending: list[tuple[str, asyncio.Future]] = []

    async def check(self, text: str) -> Verdict:
        if self.flt.action == "off":
            return Verdict(text)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((text, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            verdicts = self.flt.check_many([t for t, _ in batch])
        except Exception as e:  # each waiting request gets the error, none hangs
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), v in zip(batch, verdicts, strict=True):
            if not fut.done():
                fut.set_result(v)
