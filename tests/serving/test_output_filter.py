"""The output filter judges completions with the safety suite's detectors."""

from __future__ import annotations

import asyncio

import pytest

from lmops.serving.output_filter import BatchedFilter, OutputFilter

CLEAN = "The function returns the sum of its two arguments."
PII = "Call me on 13812345678 or write to alice.smith@example.com."
TOXIC = "You are a stupid idiot and I hate you, you worthless piece of shit."


def test_clean_text_passes_untouched():
    for action in ("block", "redact"):
        v = OutputFilter(action).check(CLEAN)
        assert v.text == CLEAN and not v.filtered


def test_redact_replaces_pii_and_says_why():
    v = OutputFilter("redact").check(PII)
    assert "13812345678" not in v.text and "alice.smith@example.com" not in v.text
    assert "<EMAIL>" in v.text and not v.blocked
    assert set(v.reasons) >= {"pii:email"}


def test_block_withholds_pii():
    v = OutputFilter("block").check(PII)
    assert v.blocked and v.text == ""


@pytest.mark.parametrize("action", ["block", "redact"])
def test_toxic_text_is_withheld_in_either_mode(action):
    v = OutputFilter(action).check(TOXIC)
    assert v.blocked and v.text == "" and any(r.startswith("toxicity") for r in v.reasons)


def test_off_checks_nothing():
    assert OutputFilter("off").check(TOXIC).text == TOXIC


def test_batched_filter_gives_each_caller_its_own_verdict():
    batched = BatchedFilter(OutputFilter("redact"))

    async def go():
        return await asyncio.gather(*(batched.check(t) for t in [CLEAN, PII, TOXIC, ""]))

    clean, pii, toxic, empty = asyncio.run(go())
    assert clean.text == CLEAN and "<EMAIL>" in pii.text and toxic.blocked and empty.text == ""
