"""Documents for data tests: varied English prose that passes the standard's rules."""

from __future__ import annotations

import json
import random

from lmops.corpus.sample import BILINGUAL

SUBJECTS = [
    "The engineer",
    "A careful reviewer",
    "The data team",
    "Every new model",
    "The scheduler",
    "A small language model",
    "The registry",
    "Our test suite",
    "The validation step",
    "A curious student",
    "The night shift",
    "That old server",
]
VERBS = [
    "checks",
    "records",
    "explains",
    "measures",
    "compares",
    "rejects",
    "publishes",
    "describes",
    "improves",
    "questions",
    "summarises",
    "repeats",
]
OBJECTS = [
    "the quality of the corpus",
    "a version of the dataset",
    "the loss on held-out text",
    "each record with a reason",
    "the history of every promotion",
    "the length of lines",
    "the share of Chinese text",
    "a report for the morning meeting",
    "the cost of training",
    "what changed since last week",
    "the rules of the standard",
    "how long the job will take",
]
TAILS = [
    "before anything is trained.",
    "with the help of a checklist.",
    "and then moves on.",
    "so that nothing is lost.",
    "because the team asked for it.",
    "in under a minute.",
    "while the others wait.",
    "and writes it to the log.",
    "as the policy requires.",
    "for the people who run it every day.",
]


def good_doc(i: int, sentences: int = 8) -> dict:
    """A unique English document of ~80 words (seeded by ``i``)."""
    rng = random.Random(i)
    parts = []
    for start in range(0, sentences, 8):  # no phrase twice within 8 sentences
        n = min(8, sentences - start)
        parts += [
            f"{s} {v} {o} {t}"
            for s, v, o, t in zip(
                rng.sample(SUBJECTS, n),
                rng.sample(VERBS, n),
                rng.sample(OBJECTS, n),
                rng.sample(TAILS, n),
                strict=True,
            )
        ]
    text = " ".join(parts)
    return {
        "id": f"good-{i}",
        "text": text,
        "source": "tests",
        "lang": "en",
        "license": "CC0-1.0",
        "meta": {"i": i},
    }


def zh_doc(i: int) -> dict:
    """The i-th Chinese document of the bundled bilingual corpus (~180 characters)."""
    return {**_ZH[i % len(_ZH)], "id": f"zh-{i}"}


_ZH = [
    json.loads(line) for line in BILINGUAL.read_text("utf-8").splitlines() if '"lang": "zh"' in line
]


def write_jsonl(path, rows) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)
