"""The streaming (``stream: true``) answer: server-sent events of OpenAI chunks, the
output filter applied as the text grows, then usage and ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from lmops.serving.completion_reply import Reply
from lmops.serving.engine import Delta
from lmops.serving.output_filter import STREAM_HOLDBACK

log = logging.getLogger("lmops.serving")
# While streaming through the output filter, the text is re-checked each time it has
# grown this many characters (and once at the end), not on every token.
STREAM_CHECK_EVERY = 16


async def sse_events(r: Reply) -> AsyncIterator[str]:
    """The event stream of ``r``: its choices run at once, their chunks interleaved."""
    flt, metrics = r.state.output_filter, r.state.metrics
    queue: asyncio.Queue = asyncio.Queue()
    counts = {"filtered": 0, "accounted": False}
    # Tokens each choice has made so far: a client that hangs up mid-stream is metered
    # (and charged to its key's tokens per minute) for what was decoded, not for nothing.
    made = [0] * len(r.jobs)

    async def pump(i, ids, p):
        raw, sent, checked, blocked, blocked_by = "", 0, 0, False, ()
        try:
            async with aclosing(r.run_one(ids, p)) as events:
                async for ev in events:
                    if isinstance(ev, Delta):
                        raw += ev.text
                        made[i] += len(ev.token_ids)
                        if flt.action == "off":
                            piece, sent = raw[sent:], len(raw)
                        elif len(raw) - checked < STREAM_CHECK_EVERY:
                            continue
                        else:
                            checked = len(raw)
                            v = flt.check(raw)
                            if v.blocked:
                                blocked, blocked_by = True, v.reasons
                                break
                            safe = max(len(v.text) - STREAM_HOLDBACK, sent)
                            piece, sent = v.text[sent:safe], safe
                        if piece:
                            await queue.put((i, piece, None))
                    else:
                        made[i] = ev.completion_tokens
                        finish = ev.finish_reason
                if blocked:
                    counts["filtered"] += 1
                    metrics.filtered(flt.action, True)
                    log.warning("%s choice %d blocked while streaming: %s", r.rid, i, blocked_by)
                    await queue.put((i, "", "content_filter"))
                    return
                tail = ""
                if flt.action != "off":
                    v = flt.check(raw)
                    if v.reasons:
                        counts["filtered"] += 1
                        metrics.filtered(flt.action, v.blocked)
                        log.warning("%s choice %d filtered: %s", r.rid, i, v.reasons)
                    tail = "" if v.blocked else v.text[sent:]
                    finish = "content_filter" if v.blocked else finish
                await queue.put((i, tail, finish))
        except Exception as e:  # reported in-band: the status line is already sent
            log.exception("%s choice %d failed", r.rid, i)
            await queue.put((i, "", f"error: {e}"))

    tasks = [asyncio.create_task(pump(i, ids, p)) for i, (ids, p) in enumerate(r.jobs)]
    open_ = len(tasks)
    try:
        if r.chat:
            first = [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                for i in range(len(r.jobs))
            ]
            yield _sse(_chunk(r, first))
        while open_:
            i, piece, finish = await queue.get()
            if finish is not None:
                open_ -= 1
            if r.chat:
                delta = {"content": piece} if piece else {}
                c = {"index": i, "delta": delta, "finish_reason": finish}
            else:
                c = {"index": i, "text": piece, "logprobs": None, "finish_reason": finish}
            yield _sse(_chunk(r, [c]))
        counts["accounted"] = True
        r.account(sum(made), counts["filtered"])
        if (r.req.stream_options or {}).get("include_usage"):
            yield _sse({**_chunk(r, []), "usage": r.usage(sum(made))})
        yield "data: [DONE]\n\n"
    finally:
        for t in tasks:
            t.cancel()
        if not counts["accounted"]:  # the client went away before the end
            r.account(sum(made), counts["filtered"])


def _chunk(r: Reply, choices: list[dict]) -> dict:
    return {
        "id": r.rid,
        "object": r.obj + ".chunk",
        "created": r.created,
        "model": r.served.name,
        "system_fingerprint": r.fingerprint,
        "choices": choices,
    }


# Characters str.splitlines breaks on that JSON leaves raw: a client that splits the
# stream that way (httpx's iter_lines) would cut a chunk in two. Escaped, the JSON is
# the same; the event's only line ends are its own.
_LINE_BREAKS_JSON_KEEPS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _sse(payload: dict) -> str:
    data = json.dumps(payload, ensure_ascii=False).translate(_LINE_BREAKS_JSON_KEEPS)
    return f"data: {data}\n\n"
