"""Preloaded by the fork server of the ingest's pools (:mod:`lmops.data.ordered_pool`).

Importing this module imports the annotate stage and runs it on two short documents, so
that every worker forked from the server starts with lingua's models, spaCy's
sentencizer, jieba's dictionary and the toxicity arrays already loaded. A failure here
only costs time: it is reported, and each worker then loads what it needs itself.
"""

from __future__ import annotations

import sys

try:
    from lmops.data.signals import warm_up

    warm_up()
except Exception as exc:  # noqa: BLE001 - the fork server must start whatever happens
    print(f"lmops: ingest workers start cold: warm-up failed: {exc!r}", file=sys.stderr)
