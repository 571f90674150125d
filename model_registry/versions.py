"""Reading versions and alias holders from the registry, with errors a user can act on."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmops.errors import LmopsError


def _missing(e: MlflowException) -> bool:
    return e.error_code == "RESOURCE_DOES_NOT_EXIST"


def get_version(name: str, version: str):
    client = MlflowClient()
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if not _missing(e):  # permission, server error: say what the server said
            raise LmopsError(f"cannot read {name} v{version}: {e.message}") from None
        try:
            client.get_registered_model(name)
        except MlflowException:
            raise LmopsError(f"no registered model '{name}'; see `lmops models list`") from None
        raise LmopsError(
            f"model '{name}' has no version {version}; see `lmops models show {name}`"
        ) from None


def holder(name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
