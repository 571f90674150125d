"""``lmops serve``: the promoted model behind an OpenAI-compatible API.

``engine`` (batched decoding over a KV cache), ``schemas`` (request bodies), ``app``
(the FastAPI app factory), ``routes_completions``, ``routes_models`` and ``routes_ops``
(the routes), ``deps`` and ``state`` (what the routes share), ``completion_reply`` and
``completion_stream`` (whole and streamed answers), ``api_errors`` and
``request_guard`` (error bodies, body-size limit), ``model_source`` (loading and
following the alias), ``output_filter`` (the safety detectors on every completion),
``keys`` and ``metering`` (API keys and per-key token usage), ``metrics`` (Prometheus).
"""
