"""Text detectors shared by every place that judges text: toxicity, PII, harm categories.

The ingest filter, the safety evaluation suite and a serving output filter import the
same code from here, so a word that the data standard drops is also one the safety
suite flags.
"""
