"""Test helpers for the safety scorers: a scripted stand-in LM and a one-thread guard."""

from __future__ import annotations

import contextlib

import torch


class ScriptedLM:
    """Stands in for a causal LM: after any prompt it "generates" the same answer.

    It has what ``generate_batch`` uses (``device``, ``eval``, ``generate``), so a
    scorer can be checked against completions known in advance.
    """

    device = torch.device("cpu")

    def __init__(self, tokenizer, answer: str):
        self.answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]

    def eval(self):
        return self

    def generate(self, input_ids, max_new_tokens, **_):
        new = torch.tensor(self.answer_ids[:max_new_tokens]).repeat(input_ids.size(0), 1)
        return torch.cat([input_ids, new], dim=1)


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: tiny models train as fast, and far faster on a busy box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
