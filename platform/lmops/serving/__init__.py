"""``lmops serve``: the promoted model behind an OpenAI-compatible API.

``engine`` (batched decoding over a KV cache), ``schemas`` (request bodies), ``app``
(FastAPI routes), ``model_source`` (loading and following the alias), ``output_filter``
(the safety detectors on every completion), ``keys`` and ``metering`` (API keys and
per-key token usage), ``metrics`` (Prometheus).
"""
