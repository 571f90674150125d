"""lmops: standardised, industrial MLOps for transformer language models.

The core library. Pipelines (`pipelines/`) wire its steps into Prefect flows and
`model_registry/` owns every write to the MLflow registry.
"""

__version__ = "0.1.0"
