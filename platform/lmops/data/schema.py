"""Record standard v1: the fields every document carries, as Arrow schemas.

Pre-training records carry ``id, text, source, lang, license, meta``; fine-tuning
records carry ``prompt, response`` in place of ``text``. ``meta`` is stored as a
JSON string so that the Parquet schema stays fixed whatever users put in it.
"""

from __future__ import annotations

import pyarrow as pa

STANDARD_VERSION = "1.0.0"

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

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line", pa.int64()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),
    ]
)
