"""Record standard v1: the fields every document carries, as Arrow schemas.

Pre-training records carry ``id, text, source, lang, license, meta``; fine-tuning
records carry ``prompt, response`` in place of ``text``. ``meta`` is stored as a
JSON string so that the Parquet schema stays fixed whatever users put in it.
"""

from __future__ import annotations

import pyarrow as pa

STANDARD_VERSION = "1.0.0"  # schema version of the record standard

PRETRAIN_FIELDS = ("id", "text", "source", "lang", "license", "meta")
FINETUNE_FIELDS = ("id", "prompt", "response", "source", "lang", "license", "meta")

ACCEPTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("license", pa.string()),
        ("meta", pa.string()),
        ("doc_hash", pa.string()),
    ]
)

# ``record`` is the record as read with its PII redacted (``<EMAIL>``...), cut to a preview;
# ``pii_hits`` counts the PII found in it.
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line", pa.int64()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),
        ("pii_hits", pa.int64()),
    ]
)

# Stage 1 output: records that passed the schema, not yet normalised or scored.
CANDIDATE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("license", pa.string()),
        ("meta", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("record", pa.string()),
    ]
)

# Per-document metrics of accepted documents: what the GX suite validates.
METRICS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_hash", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
        ("n_chars", pa.int64()),
        ("n_words", pa.float64()),
        ("mean_word_length", pa.float64()),
        ("dup_line_ratio", pa.float64()),
        ("toxicity", pa.float64()),
        ("pii_hits", pa.int64()),
    ]
)
