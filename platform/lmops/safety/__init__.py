"""Safety and ethics scorers of the evaluation suite (red team, PII and canary leaks,
memorisation, bias) and the data they probe with. Text judgements come from
``lmops.text``, the detectors the ingest filter uses too.
"""
