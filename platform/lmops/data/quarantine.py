"""Quarantine rows: which record was rejected, where it came from and why.

A row keeps a preview of the record as read, so that a reviewer sees what was rejected.
The preview is redacted with the detector that redacts accepted text
(:func:`lmops.text.pii.redact`): the quarantine must not keep the personal data the
dataset removes.
"""

from __future__ import annotations

from lmops.text.pii import redact

RECORD_CHARS = 2000  # the preview a quarantine row keeps
# The longest PII value that matters: an e-mail address (RFC 5321 caps one at 254
# characters). A preview cut short may end inside one, where no detector sees it.
PII_MAX_CHARS = 254
# A token is at most one character longer than the value it replaces (``<EMAIL>`` for the
# shortest, 6-character address), so what the last PII_MAX_CHARS of a cut text become
# after redaction is at most twice as long: dropping that much drops any cut value.
CUT_GUARD = 2 * PII_MAX_CHARS
# What stages carry of a record until it is decided: the preview plus the guard.
HEAD_CHARS = RECORD_CHARS + CUT_GUARD


def reason_family(reason: str) -> str:
    """``schema:missing:text`` -> ``schema:missing``: the counting key for a reason."""
    return ":".join(reason.split(":")[:2])


def redacted_preview(record: str, cut: bool = False) -> tuple[str, int]:
    """The record's preview with its PII redacted, and the number of PII hits redacted.

    ``cut``: ``record`` is already a truncated preview. A record of ``HEAD_CHARS`` or
    more is cut here and treated the same way. Redaction runs before any cut of our own;
    after a cut, what the last ``PII_MAX_CHARS`` became is dropped.
    """
    if len(record) >= HEAD_CHARS:
        record, cut = record[:HEAD_CHARS], True
    text, counts = redact(record)
    if cut:
        text = text[: max(len(text) - CUT_GUARD, 0)]
    return text[:RECORD_CHARS], sum(counts.values())


def quarantine_row(
    file: str, line: int, reason: str, record: str, cut: bool = False, doc_pii_hits: int = 0
) -> dict:
    """One row of ``QUARANTINE_SCHEMA``.

    ``pii_hits`` is the number of PII hits redacted from the preview, or ``doc_pii_hits``
    (the count annotate made over a document's whole text) when that is larger.
    """
    preview, hits = redacted_preview(record, cut)
    return {
        "source_file": file,
        "line": line,
        "rule": reason_family(reason),
        "reason": reason,
        "record": preview,
        "pii_hits": max(hits, doc_pii_hits),
    }
