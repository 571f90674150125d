"""Build the evaluation set of a published dataset version.

The held-out documents are exactly those the training split left out (the same
content-hash rule as ``lmops.data.tokenize``), so a model is never scored on text it
trained on. Documents are kept as text, not token ids: every model tokenises them
with its own tokenizer, which is what lets an incumbent with another tokenizer be
re-scored on the candidate's evaluation set (compare ``eval/bits_per_byte``).

The evaluation set id hashes the dataset version and every setting that picks the
documents, so a cached score is reused only for the very same documents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lmops.data.tokenize import is_validation
from lmops.errors import LmopsError
from lmops.evaluation.canaries import canaries_from_records
from lmops.evaluation.scorer import EvalData, EvalDoc


def eval_set_id(
    dataset_version: str, val_fraction: float, max_held_out: int, max_train: int
) -> str:
    blob = json.dumps([dataset_version, val_fraction, max_held_out, max_train, "v2"]).encode()
    return "es-" + hashlib.sha256(blob).hexdigest()[:16]


def _rows(version_path: Path):
    """(id, doc_hash, text, lang, meta) of every accepted record, in shard order."""
    from lmops.data.store import open_parquet

    manifest = json.loads((version_path / "manifest.json").read_text(encoding="utf-8"))
    for shard in manifest["shards"]:
        pf = open_parquet(version_path / shard)
        cols = ["id", "doc_hash", "text", "lang", "meta"]
        for batch in pf.iter_batches(columns=cols, batch_size=1024):
            yield from zip(*(batch.column(c).to_pylist() for c in cols), strict=True)


def _interleave_languages(docs: list[EvalDoc]) -> list[EvalDoc]:
    """Round-robin over languages, each in content-hash order.

    A corpus that is 90% English would otherwise fill a capped sample with English
    and leave the per-language scores of the rest empty.
    """
    by_lang: dict[str, list[EvalDoc]] = {}
    for d in sorted(docs, key=lambda d: d.doc_hash):
        by_lang.setdefault(d.lang, []).append(d)
    queues = [by_lang[k] for k in sorted(by_lang)]
    out: list[EvalDoc] = []
    for i in range(max(map(len, queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def load_eval_data(
    version_path: Path, val_fraction: float, max_held_out: int, max_train: int
) -> EvalData:
    """Held-out docs, a training sample and the planted canaries of one dataset version.

    Both samples take documents in content-hash order, a fixed pseudo-random draw,
    alternating between languages, so the same version always gives the same set and
    every language is represented even under a small cap.
    """
    if not (version_path / "manifest.json").exists():
        raise LmopsError(
            f"dataset version {version_path.name} is not in {version_path.parent}; "
            "run `lmops ingest` for it or pass --dataset with a published version"
        )
    held, train, canaries = [], [], []
    for rec_id, doc_hash, text, lang, meta in _rows(version_path):
        found = canaries_from_records([{"id": rec_id, "text": text, "meta": meta}])
        canary = found[0] if found else None
        if is_validation(doc_hash, val_fraction):
            if canary is None:
                held.append(EvalDoc(text, lang or "und", doc_hash))
        elif canary is not None:
            canaries.append(canary)  # only canaries the model trained on can leak
        else:
            train.append(EvalDoc(text, lang or "und", doc_hash))
    if not held:
        raise LmopsError(
            f"dataset version {version_path.name} has no held-out documents at "
            f"val_fraction={val_fraction}; raise data.val_fraction or add documents"
        )
    return EvalData(
        eval_set_id=eval_set_id(version_path.name, val_fraction, max_held_out, max_train),
        held_out=tuple(_interleave_languages(held)[:max_held_out]),
        train_sample=tuple(_interleave_languages(train)[:max_train]),
        canaries=tuple(sorted(canaries, key=lambda c: c.id)),
        dataset_version=version_path.name,
    )
