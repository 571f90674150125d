"""Model presets and builders (transformers configs)."""
