"""Model registry: registration with evidence, gates (pure decisions) and promotion.

Only ``register`` and ``promote`` write to MLflow; ``gates`` is pure and tests alone.
"""
